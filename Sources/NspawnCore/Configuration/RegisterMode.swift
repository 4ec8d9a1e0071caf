/// --register=.
public enum RegisterMode: String, Equatable, Sendable {
    case yes, no, auto

    public static func parse(_ value: String) throws(UserError) -> RegisterMode {
        if value == "auto" { return .auto }
        return try Configuration.parseBoolean(value, option: "--register") ? .yes : .no
    }
}
