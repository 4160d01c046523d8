//! `seal` runs on a small stack (the crate docs give the measured figure,
//! scripts/stack-use.sh measures it).

use dumpcrypt_seal::Recipient;

use crate::{random, seal_fresh, SPEC_RECIPIENT};

#[test]
fn seal_runs_on_the_smallest_thread_stack_the_host_gives() {
    // The host rounds a request this small up to its minimum (16 KiB and the thread's TLS
    // on glibc); an unoptimised build needs more than the release build's few KiB.
    let size = if cfg!(debug_assertions) {
        64 * 1024
    } else {
        8 * 1024
    };
    let recipient = Recipient::parse(SPEC_RECIPIENT.as_bytes()).unwrap();
    std::thread::Builder::new()
        .stack_size(size)
        .spawn(move || {
            let _ = seal_fresh(&recipient, &random::<64>());
        })
        .unwrap()
        .join()
        .unwrap();
}

/// The call scripts/stack-use.sh measures under gdb: one seal on an ordinary thread stack,
/// with the secrets in `Randomness` that the script then looks for in the dead stack.
#[test]
fn a_seal_for_scripts_stack_use() {
    let recipient = Recipient::parse(SPEC_RECIPIENT.as_bytes()).unwrap();
    let sealed = seal_fresh(&recipient, &random::<64>());
    assert_eq!(&sealed[..22], b"age-encryption.org/v1\n");
}
