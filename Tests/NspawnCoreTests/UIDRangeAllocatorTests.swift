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

    @Test func insideAMachineCandidatesStayAmongItsMappedIDs() {
        // A nesting machine maps 0…0xFFFFF: the 64K slots from 0x80000 up, eight of them.
        var generator = Fixed(value: 12345)
        let bases = UIDRangeAllocator.candidates(for: "inner", count: 50, within: [UIDRange(base: 0, count: 0x10_0000)], using: &generator)
        #expect(!bases.isEmpty && bases.allSatisfy { $0 >= 0x8_0000 && $0 <= 0xF_0000 && $0 % 65536 == 0 })
        #expect(Set(bases).count > 1)
        // A 16-slot range needs 16 free slots in one mapped stretch.
        let wide = UIDRangeAllocator.candidates(
            for: "outer", count: 20, size: 16 * 65536, within: [UIDRange(base: 0x8_0000, count: 0x20_0000)], using: &generator)
        #expect(!wide.isEmpty && wide.allSatisfy { $0 >= 0x8_0000 && UInt64($0) + 16 * 65536 <= 0x28_0000 })
        // A machine with 64K IDs has no room for one of its own.
        #expect(UIDRangeAllocator.candidates(for: "inner", count: 5, within: [UIDRange(base: 0, count: 65536)], using: &generator).isEmpty)
    }

    @Test func idMapsAreReadAndIntersected() {
        let uids = IDMap.parse("         0     983040      65536\n     65536    2000000     100\n")
        #expect(uids == [UIDRange(base: 0, count: 65536), UIDRange(base: 65536, count: 100)])
        let gids = IDMap.parse("0 983040 65546\n")
        #expect(IDMap.intersection(uids, gids) == [UIDRange(base: 0, count: 65536), UIDRange(base: 65536, count: 10)])
        #expect(IDMap.parse("0 0 4294967295\n") == [UIDRange(base: 0, count: UInt32.max)])
    }

    @Test func subordinateRangesPastTheIDSpaceAreSkipped() {
        let ranges = UIDRangeAllocator.subordinateRanges("alice:100000:65536\nbroken:4294967000:1000\nbad:x:1\nzero:5:0\n")
        #expect(ranges == [UIDRange(base: 100000)])
    }

    @Test func splitMixSpreadsCandidatesFromOneSeed() {
        var generator = SplitMix64(seed: 42)
        let bases = UIDRangeAllocator.candidates(for: "web", count: 100, using: &generator)
        #expect(Set(bases.dropFirst()).count > 90, "99 random bases should rarely collide among ~28,000 slots")
        var again = SplitMix64(seed: 42)
        #expect(UIDRangeAllocator.candidates(for: "web", count: 100, using: &again) == bases)
    }
}

/// When NSS can know no more than the files the allocator reads itself, it is not asked.
struct NSSFilesSufficeTests {
    @Test func onlyFilesAndAnEmptySystemdModule() {
        let debian = "# The default.\npasswd:         files systemd\ngroup:          files systemd\nshadow: files\nhosts: files dns\n"
        #expect(NSSRangeProbe.filesSuffice(nsswitch: debian) { _ in false })
        // systemd's module with a userdb service or record to report: ask.
        #expect(!NSSRangeProbe.filesSuffice(nsswitch: debian) { $0 == "/run/systemd/userdb" })
        #expect(!NSSRangeProbe.filesSuffice(nsswitch: debian) { $0 == "/etc/userdb" })
        #expect(NSSRangeProbe.filesSuffice(nsswitch: "passwd: files\ngroup: files\n") { _ in true })
        for other in [
            "passwd: files ldap\ngroup: files\n", "passwd: files\ngroup: files sss\n", "passwd: files [NOTFOUND=return] systemd\ngroup: files\n",
            "group: files\n", "passwd: files # ldap\ngroup: files\n",
        ] {
            #expect(!NSSRangeProbe.filesSuffice(nsswitch: other) { _ in false }, "\(other)")
        }
        #expect(!NSSRangeProbe.filesSuffice(nsswitch: nil) { _ in false })
    }
}
