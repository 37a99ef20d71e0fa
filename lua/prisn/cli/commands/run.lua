-- `prisn run SCRIPT [ARGS...]`: run a script now, as if run directly, with
-- its dependencies installed once and cached, and the run recorded as a job.
-- Its flags are declared in prisn.cli.workload, which `prisn deploy` and
-- `prisn cron` take theirs from; what it does with them is prisn.cli.run.
local workload = require("prisn.cli.workload")

local function handler(ctx)
  return require("prisn.cli.run").handler(ctx)
end

return {
  {
    name = "run",
    summary = "Run a script now: dependencies installed once and cached, output streamed, run recorded",
    description = "Runs SCRIPT with the runner its shebang or extension names (python3, node,\n"
      .. "bash, sh, lua, ruby, perl, php, deno, bun, or an operator's runner from\n"
      .. "$PRISN_HOME/runners). Python and Node dependencies are detected (PEP 723\n"
      .. "metadata, requirements.txt, pyproject.toml, package.json, or the imports),\n"
      .. "installed once into a cached environment and reused by later runs.\n"
      .. "\n"
      .. "The script inherits your environment, standard input and terminal; stdout\n"
      .. "and stderr stream live and stay separate. prisn exits with the script's\n"
      .. "exit code; killed by a signal it exits 128+N; on --timeout it stops the\n"
      .. "whole process group (SIGTERM, then SIGKILL after --grace) and exits 124.\n"
      .. "Ctrl-C and SIGTERM are forwarded to the script's process group.\n"      .. "\n"
      .. "--memory, --cpu and --pids limit the script and everything it starts,\n"
      .. "through a cgroup of its own (as root, or with a delegated cgroup). Over\n"
      .. "its memory the kernel kills it: the job's reason is oom_killed and prisn\n"
      .. "exits 137. Over its CPU share it is slowed down, never killed. At its\n"
      .. "process limit fork fails inside it (EAGAIN). When the script ends,\n"
      .. "whatever it left running is killed. Without cgroup access prisn falls\n"
      .. "back to rlimits and says so (see docs/RUN.md, 'prisn doctor').\n"
      .. "\n"
      .. "--isolation 1 (the default where the kernel allows it) runs the script in\n"
      .. "its own PID and mount namespaces: it sees and signals only its own\n"
      .. "processes, and $PRISN_HOME is hidden from it. --isolation 3 also gives it\n"
      .. "a network of its own with only loopback. --isolation 0 turns the sandbox\n"
      .. "off. --isolation 2 also pivots it into a minimal read-only root: system\n"
      .. "directories, its interpreter, environment and folder, a private /tmp, and\n"
      .. "the working directory writable; nothing else of the host (levels 2 and 3).\n"
      .. "--disk SIZE bounds what it may write (working directory, /tmp, /dev/shm\n"
      .. "together): past it writes fail with ENOSPC, and its writes to the working\n"
      .. "directory are then discarded at the end. --disk implies --isolation 2.\n"
      .. "See docs/SECURITY.md.\n"
      .. "\n"
      .. "Words after SCRIPT are the script's arguments; prisn's own flags may still\n"
      .. "follow SCRIPT, so put the script's flags after --. Every run is kept as a\n"
      .. "job: see 'prisn get jobs' and 'prisn logs job/ID'.\n"
      .. "\n"
      .. "--detach uploads the script's folder to the server (content-addressed, so\n"
      .. "only once), queues the job there, prints its id alone on stdout and exits:\n"
      .. "id=$(prisn run --detach job.py). Against a remote context, plain\n"
      .. "'prisn run' does the same and then streams the job's output and exits\n"
      .. "with its code. --secret NAME adds the keys of a secret (see 'prisn secret')\n"
      .. "to the script's environment; the values are never recorded.",
    args = {
      { name = "SCRIPT", summary = "The script to run (omit with --exec)", complete = "file" },
      { name = "ARGS", summary = "Arguments for the script (after -- when they look like flags)",
        repeatable = true, complete = "file" },
    },
    flags = workload.RUN_FLAGS,
    examples = {
      { "prisn run backup.py", "Run a Python script; its imports are installed on first run" },
      { "prisn run job.sh -e TARGET=/srv --timeout 5m", "With an environment variable and a time limit" },
      { "prisn run train.py --memory 2G --cpu 1.5 --pids 200", "With memory, CPU and process limits" },
      { "prisn run tool.py -- --verbose input.csv", "Pass flags to the script after --" },
      { "prisn run scrape.py --isolation 3", "Without network access (loopback only)" },
      { "prisn run convert.py --isolation 2 --disk 100M", "In a minimal root, writing at most 100 MB" },
      { "prisn run --exec 'print(42)' --runner python3", "Run inline code" },
      { "prisn run --detach nightly.py --secret db", "Queue it on the server with secret db; prints the job id" },
      { "prisn run --detach etl/load.py --include etl/node_modules", "Upload a folder .prisnignore leaves out too" },
    },
    handler = handler,
  },
  {
    name = "__job-run",
    hidden = true,
    summary = "Run one of the server's jobs to its end (started by the server)",
    args = { { name = "ID", summary = "The job id", required = true } },
    handler = function(ctx)
      local home = require("prisn.home").path()
      return require("prisn.async").main(require("prisn.exec.job_runner").run_recorded, home, ctx.args.ID)
    end,
  },
  {
    name = "__job-host",
    hidden = true,
    summary = "Fork a runner for each job id read on stdin (started by the server)",
    handler = function()
      return require("prisn.exec.job_host.host").main(require("prisn.home").path())
    end,
  },
  {
    name = "__prepare",
    hidden = true,
    summary = "Prepare a service's launch: runner, interpreter, dependencies (started by the server)",
    handler = function()
      return require("prisn.async").main(require("prisn.exec.instance").prepare_main)
    end,
  },
}
