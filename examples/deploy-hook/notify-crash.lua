-- Tells people when a service instance crashes: a line in the server's log
-- always, and a POST to the webhook in the server's PRISN_CRASH_WEBHOOK when
-- it is set (Slack, Mattermost and Rocket.Chat incoming webhooks show the
-- "text" field). Copy it to $PRISN_HOME/hooks/.
-- luacheck: read globals http
return {
  on_crash = function(event)
    local why = event.signal and ("killed by SIG" .. event.signal) or ("exit code " .. tostring(event.exit_code))
    local text = string.format("%s/%s: instance %s crashed (%s), restarts so far: %s",
      event.namespace, event.deployment, tostring(event.instance), why, tostring(event.restarts or 0))
    print(text)
    local url = os.getenv("PRISN_CRASH_WEBHOOK")
    if not url or url == "" then return end
    local status, body = http.post(url, { text = text, event = event }, { timeout = 5 })
    if not status or status >= 300 then
      error("crash webhook " .. url .. ": " .. tostring(status) .. " " .. tostring(body):sub(1, 200), 0)
    end
  end,
}
