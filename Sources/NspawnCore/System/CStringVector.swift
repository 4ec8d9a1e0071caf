#if canImport(Glibc)
    import Glibc
#endif

/// Calls `body` with `strings` as execve(2) takes argv and envp: a NULL-terminated C array of C
/// strings, freed when `body` returns (that is, when an exec failed). A plain allocation rather
/// than a Swift array of optional pointers: a forked child would instantiate that array's storage
/// type at run time, just before its exec.
func withCStringVector<R>(_ strings: [String], _ body: (UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>) -> R) -> R {
    let vector = UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>.allocate(capacity: strings.count + 1)
    defer { vector.deallocate() }
    for index in strings.indices { vector[index] = strdup(strings[index]) }
    vector[strings.count] = nil
    defer { for index in strings.indices { free(vector[index]) } }
    return body(vector)
}
