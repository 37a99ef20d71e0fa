# A service that just stays up: something to deploy, or to be refused.
import time

print("up", flush=True)
while True:
    time.sleep(3600)
