//! Runtime side of CNI: conflists, executing plugin chains, result cache, GC
