/// Placeholder replaced below.
public enum Launcher {
    public static func run(_ configuration: Configuration) -> Int32 { 0 }
}
