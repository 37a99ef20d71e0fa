local explain = require("prisn.cron.explain")

describe("prisn.cron.explain", function()
  it("describes the common forms", function()
    local cases = {
      { "0 3 * * *", "at 03:00 every day" },
      { "*/15 * * * *", "every 15 minutes" },
      { "30 9 * * 1-5", "at 09:30 on Monday through Friday" },
      { "0 0 1 * *", "at 00:00 on day 1 of the month" },
      { "* * * * *", "every minute" },
      { "@hourly", "every hour" },
      { "30 * * * *", "every hour at minute 30" },
      { "0 */2 * * *", "every 2 hours" },
      { "*/15 9-17 * * *", "every 15 minutes, during hours 9 through 17" },
      { "0 9,17 * * *", "at 09:00 and 17:00 every day" },
      { "0 18 * * mon,fri", "at 18:00 on Monday and Friday" },
      { "0 0 1,15 * *", "at 00:00 on days 1 and 15 of the month" },
      { "@yearly", "at 00:00 on day 1 of the month in January" },
      { "0 0 13 * 5", "at 00:00 on day 13 of the month or on Friday" },
      { "0 0 */2 * 1", "at 00:00 on every 2nd day of the month if it is a Monday" },
      { "0 12 * */3 *", "at 12:00 every day in January, April, July and October" },
      { "* * * * * *", "every second" },
      { "*/10 * * * * *", "every 10 seconds" },
      { "30 0 3 * * *", "at 03:00:30 every day" },
      { "1-30/5 * * * *", "every 5 minutes from minute 1 through 30" },
    }
    for _, c in ipairs(cases) do
      assert.equal(c[2], explain.describe(c[1]), c[1])
    end
  end)

  it("passes parser errors on", function()
    assert.same({ nil, "minute: 61 is out of range 0-59" }, { explain.describe("61 * * * *") })
  end)
end)
