@main
struct Twofoldctl {
    static func main() {}
}
