import Testing

@testable import NspawnCore

/// config.json's hooks, as swift-nspawn-runc reads them and state.json keeps them.
struct RuntimeHooksTests {
    private func hooks(_ text: String) throws -> RuntimeHooks {
        try RuntimeHooks(try JSONValue.parse(Array(text.utf8)), read: OCIBundle.Reader(path: "config.json"))
    }

    @Test func readAndKept() throws {
        let read = try hooks(
            #"{"createRuntime": [{"path": "/bin/a", "args": ["a", "x"], "env": ["K=v"], "timeout": 5}, {"path": "/bin/b"}], "poststop": [{"path": "/c"}]}"#)
        #expect(
            read.hooks[.createRuntime] == [
                .init(path: "/bin/a", args: ["a", "x"], env: ["K=v"], timeout: 5), .init(path: "/bin/b", args: [], env: [], timeout: nil),
            ])
        #expect(read.hooks[.poststop]?.count == 1 && read.hooks[.prestart] == nil && !read.isEmpty)
        // state.json's copy reads back the same.
        #expect(try RuntimeHooks(read.json, read: OCIBundle.Reader(path: "state.json")) == read)
        #expect(try hooks("{}").isEmpty)
    }

    @Test func refusalsNameTheField() throws {
        for (text, expected) in [
            (#"{"prestart": [{"path": "bin/a"}]}"#, "config.json: hooks.prestart[0].path: expected an absolute path."),
            (#"{"poststart": [{"path": "/a", "timeout": 0}]}"#, "hooks.poststart[0].timeout: expected an integer from 1"),
            (#"{"precreate": []}"#, "hooks.precreate: not supported by swift-nspawn."),
            (#"{"poststop": [{"path": "/a", "args": "a"}]}"#, "hooks.poststop[0].args: expected an array."),
        ] {
            do {
                _ = try hooks(text)
                Issue.record("accepted: \(text)")
            } catch {
                #expect("\(error)".contains(expected), "\(error)")
            }
        }
    }
}
