-- prisn.exec.job_host: the lines the server, the job host and the runners
-- write to one another; each end reads what another wrote.
local protocol = require("prisn.exec.job_host")

describe("prisn.exec.job_host (the pipe protocol)", function()
  it("asks the host for a runner with a run line", function()
    local line = protocol.run_line("06h1m9kbzd7n", '{"namespace":"default"}')
    assert.equal('run 06h1m9kbzd7n {"namespace":"default"}\n', line)
    assert.same({ "06h1m9kbzd7n", '{"namespace":"default"}' }, { protocol.parse_run(line:sub(1, -2)) })
    assert.is_nil(protocol.parse_run("06h1m9kbzd7n 1234"))
  end)

  it("answers with the runner's pid, or why there is none", function()
    assert.equal("06h1m9kbzd7n 4321\n", protocol.answer_line("06h1m9kbzd7n", 4321))
    assert.same({ "06h1m9kbzd7n", 4321 }, { protocol.parse_answer("06h1m9kbzd7n 4321") })
    local line = protocol.answer_line("06h1m9kbzd7n", nil, "fork: EAGAIN")
    assert.equal("06h1m9kbzd7n error fork: EAGAIN\n", line)
    assert.same({ "06h1m9kbzd7n", nil, "fork: EAGAIN" }, { protocol.parse_answer(line:sub(1, -2)) })
    assert.is_nil(protocol.parse_answer("garbage"))
  end)

  it("hands a spare runner its job on the spare's pipe", function()
    local line = protocol.assignment_line("06h1m9kbzd7n", "{}")
    assert.same({ "06h1m9kbzd7n", "{}" }, { protocol.parse_assignment(line:sub(1, -2)) })
  end)

  it("splits what the server read into whole lines and the start of the next", function()
    local line = protocol.report_line("done", "06h1m9kbzd7n", { state = "succeeded" })
    assert.same({ { line:sub(1, -2), "06h1m9kbzd7n 4321" }, "star" },
      { protocol.split_lines(line .. "06h1m9kbzd7n 4321\nstar") })
    assert.same({ {}, "partial" }, { protocol.split_lines("partial") })
    assert.same({ { "", "a" }, "" }, { protocol.split_lines("\na\n") })
  end)

  it("tells reports from answers on the one pipe the server reads", function()
    local line = protocol.report_line("started", "06h1m9kbzd7n", { pid = 4321 })
    local kind, id, fields = protocol.parse_report(line:sub(1, -2))
    assert.same({ "started", "06h1m9kbzd7n", 4321 }, { kind, id, fields.pid })
    assert.is_true(protocol.REPORTS[kind])
    -- An answer is no report: a job id is not a report's kind.
    assert.is_nil(protocol.parse_report("06h1m9kbzd7n 4321"))
    assert.is_nil(protocol.parse_report("06h1m9kbzd7n error {oops}"))
  end)

  it("keeps the host's pid in the home's run folder", function()
    assert.equal("/srv/prisn/run/job-host.pid", protocol.pid_path("/srv/prisn"))
  end)
end)
