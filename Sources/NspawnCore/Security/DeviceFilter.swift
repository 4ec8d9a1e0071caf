/// The machine's device policy, as systemd's DevicePolicy=closed: a BPF_PROG_TYPE_CGROUP_DEVICE
/// program on the machine's cgroup that lets its processes open (and mknod) only the nodes
/// swift-nspawn gives it, whatever device node an image ships or a root without a user namespace
/// creates. Written out as BPF instructions (no libbpf): it is a few compares.
public struct DeviceFilter: Equatable, Sendable {
    public struct Rule: Equatable, Sendable {
        public enum Kind: Int32, Sendable { case block = 1, character = 2 }  // BPF_DEVCG_DEV_*
        public var kind: Kind
        public var major: UInt32
        /// nil: every minor.
        public var minor: UInt32?
        /// BPF_DEVCG_ACC_* bits: mknod 1, read 2, write 4.
        public var access: Int32
    }

    public static let mknod: Int32 = 1, read: Int32 = 2, write: Int32 = 4

    public var rules: [Rule]

    /// null, zero, full, random, urandom, tty, ptmx with mknod; the machine's ptys read-write.
    public static let closed = DeviceFilter(
        rules: DeviceNode.standard.map {
            Rule(kind: .character, major: $0.major, minor: $0.minor, access: mknod | read | write)
        } + [
            Rule(kind: .character, major: 5, minor: 2, access: mknod | read | write),  // /dev/pts/ptmx
            Rule(kind: .character, major: 136, minor: nil, access: read | write),  // /dev/pts/N, the console
        ])

    /// One eBPF instruction: opcode, destination and source registers, offset, immediate.
    struct Instruction: Equatable {
        var code: UInt8
        var dst: UInt8 = 0
        var src: UInt8 = 0
        var offset: Int16 = 0
        var immediate: Int32 = 0

        var bytes: [UInt8] {
            let off = UInt16(bitPattern: offset), imm = UInt32(bitPattern: immediate)
            return [
                code, (src << 4) | dst, UInt8(off & 0xff), UInt8(off >> 8),
                UInt8(imm & 0xff), UInt8(imm >> 8 & 0xff), UInt8(imm >> 16 & 0xff), UInt8(imm >> 24),
            ]
        }

        static func loadWord(_ dst: UInt8, from src: UInt8, at offset: Int16) -> Instruction { Instruction(code: 0x61, dst: dst, src: src, offset: offset) }
        static func and(_ dst: UInt8, _ value: Int32) -> Instruction { Instruction(code: 0x57, dst: dst, immediate: value) }
        static func shiftRight(_ dst: UInt8, _ bits: Int32) -> Instruction { Instruction(code: 0x77, dst: dst, immediate: bits) }
        static func move(_ dst: UInt8, register src: UInt8) -> Instruction { Instruction(code: 0xbf, dst: dst, src: src) }
        static func move(_ dst: UInt8, _ value: Int32) -> Instruction { Instruction(code: 0xb7, dst: dst, immediate: value) }
        static func jumpIfNotEqual(_ dst: UInt8, _ value: Int32, skip: Int16) -> Instruction {
            Instruction(code: 0x55, dst: dst, offset: skip, immediate: value)
        }
        static let exit = Instruction(code: 0x95)
    }

    /// r2 = device type, r3 = access, r4 = major, r5 = minor (struct bpf_cgroup_dev_ctx); for each
    /// rule, every mismatch jumps to the next rule; a full match returns 1 (allow). Nothing matched: 0.
    var program: [Instruction] {
        var code: [Instruction] = [
            .loadWord(2, from: 1, at: 0), .and(2, 0xffff),
            .loadWord(3, from: 1, at: 0), .shiftRight(3, 16),
            .loadWord(4, from: 1, at: 4),
            .loadWord(5, from: 1, at: 8),
        ]
        for rule in rules {
            var body: [Instruction] = [.jumpIfNotEqual(4, Int32(bitPattern: rule.major), skip: 0)]
            if let minor = rule.minor { body.append(.jumpIfNotEqual(5, Int32(bitPattern: minor), skip: 0)) }
            // Access asked for must be a subset of the rule's: (r3 & ~access) == 0.
            body += [.move(1, register: 3), .and(1, ~rule.access), .jumpIfNotEqual(1, 0, skip: 0), .move(0, 1), .exit]
            let block = [Instruction.jumpIfNotEqual(2, rule.kind.rawValue, skip: 0)] + body
            // Each compare jumps past the rest of its block.
            code += block.enumerated().map { index, instruction in
                guard instruction.code == 0x55 else { return instruction }
                var jump = instruction
                jump.offset = Int16(block.count - index - 1)
                return jump
            }
        }
        return code + [.move(0, 0), .exit]
    }

    public var bytes: [UInt8] { program.flatMap(\.bytes) }
}
