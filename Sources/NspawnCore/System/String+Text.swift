/// The few text operations swift-nspawn needs beyond the standard library's core. The targets are
/// built without the implicit `_StringProcessing` import: its regex parser and algorithms would be
/// linked in for two substring searches, and their relocated data alone is about 45 KiB of every
/// supervisor's private memory.
extension StringProtocol {
    /// Whether `part` occurs in this text (compared as UTF-8 bytes, as the kernel and D-Bus give them).
    func contains(text part: some StringProtocol) -> Bool {
        let text = Array(utf8)
        let part = Array(part.utf8)
        guard part.count <= text.count else { return false }
        return (0...text.count - part.count).contains { text[$0..<$0 + part.count].elementsEqual(part) }
    }
}

extension String {
    /// The text without any of `set`'s characters at its start and end.
    func trimmingCharacters(in set: String) -> String {
        let chars = Set(set)
        var s = Substring(self)
        while let c = s.first, chars.contains(c) { s = s.dropFirst() }
        while let c = s.last, chars.contains(c) { s = s.dropLast() }
        return String(s)
    }

    /// "The outer child" → "the outer child", for the middle of a sentence.
    var lowercasedFirst: String { prefix(1).lowercased() + dropFirst() }
}
