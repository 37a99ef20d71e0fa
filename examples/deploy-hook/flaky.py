# A service that crashes a moment after it starts: something for the
# on_crash hook to report.
import sys
import time

print("up; crashing in 2 seconds", flush=True)
time.sleep(2)
sys.exit(3)
