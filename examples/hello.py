# A first script for prisn:  build/prisn run examples/hello.py [NAME]
#
# It needs nothing beyond the standard library, so prisn runs it straight
# away with the real python3 interpreter and records the run as a job:
#   build/prisn get jobs
#   build/prisn logs job/<ID>
import platform
import sys

name = sys.argv[1] if len(sys.argv) > 1 else "world"
print(f"hello, {name}, from Python {platform.python_version()}")
