//! Linearizability checking of client histories (Wing & Gong search, Porcupine style).
