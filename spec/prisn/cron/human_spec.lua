local human = require("prisn.cron.human")

describe("prisn.cron.human", function()
  it("normalizes every human form to a standard expression", function()
    local cases = {
      { "5m", "*/5 * * * *" }, { "15 minutes", "*/15 * * * *" }, { "minute", "* * * * *" },
      { "1 minute", "* * * * *" }, { "30s", "*/30 * * * * *" }, { "10 seconds", "*/10 * * * * *" },
      { "hour", "0 * * * *" }, { "2 hours", "0 */2 * * *" }, { "6h", "0 */6 * * *" },
      { "hour at :15", "15 * * * *" }, { "15 minutes on weekdays", "*/15 * * * 1-5" },
      { "day", "0 0 * * *" }, { "weekday", "0 0 * * 1-5" }, { "weekend", "0 0 * * 0,6" },
      { "monday", "0 0 * * 1" }, { "sundays at midnight", "0 0 * * 0" }, { "week", "0 0 * * 0" },
      { "month", "0 0 1 * *" }, { "year at noon", "0 12 1 1 *" },
      { "day at 03:00", "0 3 * * *" }, { "every day at 3pm", "0 15 * * *" },
      { "weekday at 9:30am", "30 9 * * 1-5" }, { "weekday at 12am", "0 0 * * 1-5" },
      { "monday,friday at 18:00", "0 18 * * 1,5" }, { "mon-fri at 8:00", "0 8 * * 1-5" },
      { "friday and monday at 7", "0 7 * * 1,5" },
      { "month on the 1st at 00:00", "0 0 1 * *" }, { "month on the 15th", "0 0 15 * *" },
      { "month on 1st,15th at 6:00", "0 6 1,15 * *" }, { "day on monday at 12:30", "30 12 * * 1" },
      { "Day At 03:00", "0 3 * * *" },
    }
    for _, c in ipairs(cases) do
      assert.equal(c[2], human.normalize(c[1]), c[1])
    end
  end)

  it("takes the time and day separately", function()
    assert.equal("0 3 * * *", human.normalize("day", { at = "03:00" }))
    assert.equal("30 9 * * 1-5", human.normalize("weekday", { at = "9:30am" }))
    assert.equal("0 6 15 * *", human.normalize("month", { on = "15th", at = "6am" }))
    assert.equal("0 18 * * 1,5", human.normalize("day", { on = "monday,friday", at = "18:00" }))
  end)

  it("says what it did not understand and shows accepted forms", function()
    local forms = human.FORMS
    local cases = {
      { "fortnight", "cannot understand schedule 'fortnight'; accepted forms: " .. forms },
      { "", "an empty schedule; accepted forms: " .. forms },
      { "7 minutes", "every 7 minutes does not divide an hour evenly; "
        .. "use one of 1, 2, 3, 4, 5, 6, 10, 12, 15, 20, 30 minutes" },
      { "5 hours", "every 5 hours does not divide a day evenly; use one of 1, 2, 3, 4, 6, 8, 12 hours" },
      { "day at 25:00", "'25:00' is not a time of day; hours go 0-23 and minutes 0-59" },
      { "day at soon", "'soon' is not a time of day; use 24-hour 03:00 or 9:30am" },
      { "day at 13pm", "'13pm' is not a time of day: 13 is not an hour on a 12-hour clock" },
      { "month on the 32nd", "cannot understand day of the month 'the 32nd'; accepted forms: " .. forms },
      { "day on blursday", "cannot understand day 'blursday'; accepted forms: " .. forms },
      { "5m at 03:00", "'at 03:00' does not fit 'every 5m'; only hours take a minute, like 'hour at :15'" },
      { "monday on friday", "'every monday' already names the days; drop 'on friday'" },
    }
    for _, c in ipairs(cases) do
      assert.same({ nil, c[2] }, { human.normalize(c[1]) }, c[1])
    end
    assert.same({ nil, "the time is given twice: in the text and with --at" },
      { human.normalize("day at 3:00", { at = "4:00" }) })
  end)
end)
