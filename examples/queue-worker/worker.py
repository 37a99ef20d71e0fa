# A queue worker run as detached prisn jobs: it takes the oldest *.json task
# from the queue folder, claims it by renaming it (so two workers never take
# the same task), does the work, and writes the result into done/. It stops
# when the queue is empty, so each `prisn run --detach` is one batch of work.
import json
import os
import sys
import time

QUEUE = os.environ.get("QUEUE", "queue")
DONE = os.path.join(QUEUE, "done")


def claim():
    for name in sorted(os.listdir(QUEUE)):
        if not name.endswith(".json"):
            continue
        path = os.path.join(QUEUE, name)
        claimed = path + ".working"
        try:
            os.rename(path, claimed)
        except FileNotFoundError:
            continue  # another worker took it first
        return name, claimed
    return None, None


def main():
    os.makedirs(DONE, exist_ok=True)
    done = 0
    while True:
        name, claimed = claim()
        if name is None:
            break
        with open(claimed) as f:
            task = json.load(f)
        result = {"task": name, "sum": sum(task["numbers"]), "at": time.time()}
        with open(os.path.join(DONE, name), "w") as f:
            json.dump(result, f)
        os.remove(claimed)
        print("done", name, "sum", result["sum"], flush=True)
        done += 1
    print("queue empty after", done, "task(s)", file=sys.stderr, flush=True)


if __name__ == "__main__":
    main()
