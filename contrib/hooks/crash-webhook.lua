-- crash-webhook.lua: tell a chat room (or any webhook) when an instance
-- crashes.
--
-- Copy to $PRISN_HOME/hooks/ and set, in the server's environment,
--
--   PRISN_CRASH_WEBHOOK=https://hooks.slack.com/services/...   (or any URL)
--
-- It POSTs JSON: {"text": "...", "event": {...the on_crash event...}}; the
-- "text" field is what Slack, Mattermost and Rocket.Chat incoming webhooks
-- show. https:// needs curl on the server; plain http:// does not. Without
-- PRISN_CRASH_WEBHOOK the hook does nothing. A webhook that fails or answers
-- an error status makes the hook fail, which is a "hook.failed" event.
-- luacheck: read globals http
return {
  on_crash = function(event)
    local url = os.getenv("PRISN_CRASH_WEBHOOK")
    if not url or url == "" then return end
    local why = event.signal and ("killed by SIG" .. event.signal)
      or ("exit code " .. tostring(event.exit_code))
    local text = string.format("%s/%s: instance %s crashed (%s, %s), restarts so far: %s",
      event.namespace or "default", event.deployment or "?", tostring(event.instance),
      event.reason or "crashed", why, tostring(event.restarts or 0))
    local status, body = http.post(url, { text = text, event = event }, { timeout = 5 })
    if not status then error("crash webhook " .. url .. ": " .. body, 0) end
    if status >= 300 then
      error(string.format("crash webhook %s answered %d: %s", url, status, body:sub(1, 200)), 0)
    end
    print("crash webhook: " .. status)
  end,
}
