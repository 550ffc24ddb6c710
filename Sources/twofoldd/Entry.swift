/// `twofoldd move-in ...` and `twofoldd restore ...` are commands of their own, not subcommands:
/// the daemon's --config and --key-file mean the daemon's, move-in's the tier's config and the
/// host's key, restore's the key of the backup, and a parser that shares them between a command
/// and its subcommand would give them to the daemon.
@main
enum Entry {
    static func main() async {
        let arguments = Array(CommandLine.arguments.dropFirst())
        if arguments.first == "move-in" {
            await MoveInCommand.main(Array(arguments.dropFirst()))
        } else if arguments.first == "restore" {
            await RestoreCommand.main(Array(arguments.dropFirst()))
        } else {
            await TwofoldDaemonCommand.main(arguments)
        }
    }
}
