import Testing
@testable import NspawnCore

@Suite struct UIDRangeAllocatorTests {
    struct Fixed: RandomNumberGenerator {
        var value: UInt64
        mutating func next() -> UInt64 {
            value &+= 0x9e37_79b9_7f4a_7c15
            return value
        }
    }

    @Test func candidatesAreAlignedAndInsideTheAllowedWindow() {
        var generator = Fixed(value: 1)
        let bases = UIDRangeAllocator.candidates(for: "web", count: 100, using: &generator)
        #expect(bases.count == 100)
        for base in bases {
            #expect(base % 65536 == 0)
            #expect(base >= UIDRangeAllocator.lowestBase && base <= UIDRangeAllocator.highestBase)
        }
    }

    @Test func theFirstCandidateIsStablePerName() {
        var a = Fixed(value: 1), b = Fixed(value: 99)
        #expect(UIDRangeAllocator.candidates(for: "web", count: 1, using: &a) == UIDRangeAllocator.candidates(for: "web", count: 1, using: &b))
        var c = Fixed(value: 1)
        #expect(UIDRangeAllocator.candidates(for: "db", count: 1, using: &c) != UIDRangeAllocator.candidates(for: "web", count: 1, using: &a))
    }

    @Test func aRangeWithAHostIDIsNotFree() {
        let range = UIDRange(base: 0x100000)
        #expect(UIDRangeAllocator.isFree(range, hostIDs: [0, 1000, 65534, 0x200000]))
        #expect(!UIDRangeAllocator.isFree(range, hostIDs: [0x100000 + 65535]))
        #expect(!UIDRangeAllocator.isFree(range, hostIDs: [0x100000]))
    }

    @Test func rangesOverlap() {
        #expect(UIDRange(base: 65536).overlaps(UIDRange(base: 65536 + 100, count: 10)))
        #expect(!UIDRange(base: 65536).overlaps(UIDRange(base: 131072)))
        #expect(UIDRange(base: 131072).mapLine == "0 131072 65536\n")
    }
}
