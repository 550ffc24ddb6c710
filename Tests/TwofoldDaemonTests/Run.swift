import TwofoldTestSupport

/// Runs a command, returning its exit status and combined output.
@discardableResult
func run(_ argv: [String], environment: [String: String]? = nil, input: String? = nil) throws -> (status: Int32, output: String) {
    try ChildProcess.run(argv, environment: environment, input: input)
}
