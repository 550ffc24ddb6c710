/// The release of Twofold this build is. One place: `twofoldd --version`, `twofoldctl --version`, the
/// daemon's `serverInfo`, and debian/changelog (a test holds the changelog's top entry to it).
public enum TwofoldVersion {
    public static let string = "0.10.0"
}
