/// A classic BPF seccomp program that decides on the architecture and the system call number alone
/// (as libseccomp's allow-list does), re-emitted as binary searches over ranges of both.
///
/// libseccomp compiles one rule per known call and architecture: ~1,500 instructions for our
/// allow-list on x86-64, x86 and x32. The kernel verifies, converts and JITs all of them on every
/// start, in PID 1 just before its exec (~350 µs here). Its answer changes only at the few hundred
/// numbers where allowed, refused and unknown calls meet, so the same decisions fit in ~560
/// instructions (~150 µs to load), and each call of the machine walks ~9 comparisons.
///
/// The decisions are read from the program itself, not rebuilt from the rules: between two
/// constants the program compares a field with, every path through it is the same, so evaluating
/// it once per range gives its whole table. A program that looks at anything else (the arguments,
/// the instruction pointer) or does arithmetic is left as it is.
enum SeccompRangeProgram {
    /// struct sock_filter: opcode, jump if true, jump if false, constant.
    struct Instruction: Equatable {
        var code: UInt16
        var jt: UInt8 = 0
        var jf: UInt8 = 0
        var k: UInt32 = 0

        static let loadWord: UInt16 = 0x20  // BPF_LD | BPF_W | BPF_ABS
        static let jump: UInt16 = 0x05  // BPF_JMP | BPF_JA
        static let jumpIfEqual: UInt16 = 0x15  // BPF_JMP | BPF_JEQ | BPF_K
        static let jumpIfGreater: UInt16 = 0x25  // BPF_JMP | BPF_JGT | BPF_K
        static let jumpIfAtLeast: UInt16 = 0x35  // BPF_JMP | BPF_JGE | BPF_K
        static let returnConstant: UInt16 = 0x06  // BPF_RET | BPF_K

        var bytes: [UInt8] {
            [UInt8(code & 0xff), UInt8(code >> 8), jt, jf, UInt8(k & 0xff), UInt8(k >> 8 & 0xff), UInt8(k >> 16 & 0xff), UInt8(k >> 24)]
        }
    }

    /// The two fields of struct seccomp_data the program may read, by offset.
    static let numberOffset: UInt32 = 0
    static let architectureOffset: UInt32 = 4
    /// The conditional jumps' offsets are 8 bits wide.
    private static let longestConditionalJump = 255

    /// Answers that change only where `start` says: each range runs from its start to the next one's.
    typealias Ranges<Answer> = [(start: UInt32, answer: Answer)]

    /// The same decisions in fewer instructions, or nil when the program reads more than the
    /// architecture and the number, or is not shorter so.
    static func compacted(_ program: [UInt8]) -> [UInt8]? {
        guard let instructions = decode(program), let table = decisionTable(instructions) else { return nil }
        let compact = emit(table)
        guard compact.count < instructions.count else { return nil }
        return compact.flatMap(\.bytes)
    }

    static func decode(_ program: [UInt8]) -> [Instruction]? {
        guard !program.isEmpty, program.count % 8 == 0 else { return nil }
        return stride(from: 0, to: program.count, by: 8).map { i in
            let code = UInt16(program[i]) | UInt16(program[i + 1]) << 8
            var k: UInt32 = 0
            for byte in program[(i + 4)..<(i + 8)].reversed() { k = k << 8 | UInt32(byte) }
            return Instruction(code: code, jt: program[i + 2], jf: program[i + 3], k: k)
        }
    }

    /// The answer of `program` for each architecture range, itself by number range; nil when the
    /// program is not one this can read (see the type's comment).
    static func decisionTable(_ program: [Instruction]) -> Ranges<Ranges<UInt32>>? {
        guard let (architectureBounds, numberBounds) = bounds(program) else { return nil }
        var table: Ranges<Ranges<UInt32>> = []
        for architecture in architectureBounds {
            var numbers: Ranges<UInt32> = []
            for number in numberBounds {
                guard let answer = evaluate(program, architecture: architecture, number: number) else { return nil }
                if numbers.last?.answer != answer { numbers.append((number, answer)) }
            }
            if let last = table.last, last.answer.elementsEqual(numbers, by: { $0 == $1 }) { continue }
            table.append((architecture, numbers))
        }
        return table
    }

    /// Where the program's answer can change, for each field: 0, and every value at which one of its
    /// comparisons of that field turns. Found by following which field the accumulator holds at
    /// each instruction (jumps go only forward, so one pass in order sees every path's state).
    private static func bounds(_ program: [Instruction]) -> (architecture: [UInt32], number: [UInt32])? {
        struct Holds: OptionSet {
            let rawValue: UInt8
            static let nothing = Holds(rawValue: 1), number = Holds(rawValue: 2), architecture = Holds(rawValue: 4)
        }
        var holds = [Holds](repeating: [], count: program.count)
        holds[0] = .nothing
        var architecture: Set<UInt32> = [0], number: Set<UInt32> = [0]
        for (pc, instruction) in program.enumerated() where !holds[pc].isEmpty {
            var targets: [Int] = []
            var after = holds[pc]
            switch instruction.code {
            case Instruction.loadWord:
                switch instruction.k {
                case numberOffset: after = .number
                case architectureOffset: after = .architecture
                default: return nil
                }
                targets = [pc + 1]
            case Instruction.jumpIfEqual, Instruction.jumpIfGreater, Instruction.jumpIfAtLeast:
                guard !holds[pc].contains(.nothing) else { return nil }
                let k = instruction.k
                let turns: [UInt32] =
                    switch instruction.code {
                    case Instruction.jumpIfEqual: [k, k &+ 1]
                    case Instruction.jumpIfGreater: [k &+ 1]
                    default: [k]
                    }
                if holds[pc].contains(.number) { number.formUnion(turns) }
                if holds[pc].contains(.architecture) { architecture.formUnion(turns) }
                targets = [pc + 1 + Int(instruction.jt), pc + 1 + Int(instruction.jf)]
            case Instruction.jump:
                targets = [pc + 1 + Int(instruction.k)]
            case Instruction.returnConstant:
                continue
            default:
                return nil
            }
            for target in targets {
                guard target < program.count else { return nil }
                holds[target].formUnion(after)
            }
        }
        return (architecture.sorted(), number.sorted())
    }

    /// The program run as the kernel runs it, for a call with these two fields. Every jump goes
    /// forward, so it ends within the program's length.
    static func evaluate(_ program: [Instruction], architecture: UInt32, number: UInt32) -> UInt32? {
        var a: UInt32 = 0
        var pc = 0
        while pc < program.count {
            let instruction = program[pc]
            switch instruction.code {
            case Instruction.loadWord:
                switch instruction.k {
                case numberOffset: a = number
                case architectureOffset: a = architecture
                default: return nil
                }
                pc += 1
            case Instruction.jumpIfEqual, Instruction.jumpIfGreater, Instruction.jumpIfAtLeast:
                let taken =
                    switch instruction.code {
                    case Instruction.jumpIfEqual: a == instruction.k
                    case Instruction.jumpIfGreater: a > instruction.k
                    default: a >= instruction.k
                    }
                pc += 1 + Int(taken ? instruction.jt : instruction.jf)
            case Instruction.jump:
                pc += 1 + Int(instruction.k)
            case Instruction.returnConstant:
                return instruction.k
            default:
                return nil
            }
        }
        return nil
    }

    /// Loads the architecture and searches its ranges; in each, loads the number and searches its
    /// ranges, whose leaves return the answer.
    static func emit(_ table: Ranges<Ranges<UInt32>>) -> [Instruction] {
        [Instruction(code: Instruction.loadWord, k: architectureOffset)]
            + search(table) { numbers in
                guard numbers.count > 1 else { return [Instruction(code: Instruction.returnConstant, k: numbers[0].answer)] }
                return [Instruction(code: Instruction.loadWord, k: numberOffset)]
                    + search(numbers) { [Instruction(code: Instruction.returnConstant, k: $0)] }
            }
    }

    /// A binary search of the accumulator over `ranges` (the first starts at 0): below the middle
    /// range's start the lower half, else the upper half. A lower half too long for a conditional
    /// jump to pass is passed by an unconditional one.
    private static func search<Answer>(_ ranges: Ranges<Answer>, leaf: (Answer) -> [Instruction]) -> [Instruction] {
        guard ranges.count > 1 else { return leaf(ranges[0].answer) }
        let middle = ranges.count / 2
        let lower = search(Array(ranges[..<middle]), leaf: leaf)
        let upper = search(Array(ranges[middle...]), leaf: leaf)
        let split = ranges[middle].start
        if lower.count <= longestConditionalJump {
            return [Instruction(code: Instruction.jumpIfAtLeast, jt: UInt8(lower.count), jf: 0, k: split)] + lower + upper
        }
        return [Instruction(code: Instruction.jumpIfAtLeast, jt: 0, jf: 1, k: split), Instruction(code: Instruction.jump, k: UInt32(lower.count))] + lower
            + upper
    }
}
