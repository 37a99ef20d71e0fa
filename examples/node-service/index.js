// A Node HTTP service run as a prisn deployment: it listens on the PORT prisn
// gives each instance and answers /healthz for the health check. Its one
// dependency comes from package.json, installed once by prisn (npm install)
// into a cached environment shared by every instance.
const http = require("http");
const greeting = require("greeting");

const server = http.createServer((req, res) => {
  if (req.url === "/healthz") {
    res.end("ok\n");
    return;
  }
  res.setHeader("Content-Type", "text/plain");
  res.end(greeting.greet(process.env.PRISN_INSTANCE) + "\n");
});

server.listen(Number(process.env.PORT), "127.0.0.1", () => {
  console.log(`listening on ${process.env.PORT}`);
});
