// A stand-in for a package from the npm registry, kept beside the service so
// the example (and the test that runs it) installs without a network.
exports.greet = (who) => `hello from ${who || "node"}`;
