import Testing

@testable import NspawnCore

struct CStringVectorTests {
    @Test func stringsBecomeANullTerminatedVectorOfCStrings() {
        let read = withCStringVector(["a", "", "ünï=x y"]) { vector in
            (0..<4).map { index in vector[index].map { String(cString: $0) } }
        }
        #expect(read == ["a", "", "ünï=x y", nil])
        #expect(withCStringVector([]) { $0[0] == nil })
    }
}
