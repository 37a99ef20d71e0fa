# The worker of the manifest's system: a loop that would take work from
# somewhere; here it says it is alive every INTERVAL seconds.
import os
import time

while True:
    print("worker", os.environ["PRISN_INSTANCE"], "alive", flush=True)
    time.sleep(float(os.environ.get("INTERVAL", "5")))
