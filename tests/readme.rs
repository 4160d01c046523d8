//! The README's bug check table is the code's: every fault, in order, with its parameters.

#[test]
fn the_bug_check_table_matches_the_fault_table() {
    let readme = include_str!("../README.md");
    let rows: Vec<Vec<String>> = readme
        .lines()
        .skip_while(|line| !line.starts_with("| P1 | fault"))
        .skip(2)
        .take_while(|line| line.starts_with('|'))
        .map(|line| {
            line.trim_matches('|')
                .split('|')
                .map(|cell| cell.trim().to_string())
                .collect()
        })
        .collect();
    let expected: Vec<Vec<String>> = dumpcrypt_core::fault::Rule::TABLE
        .iter()
        .map(|(_, code, name, p2, p3)| {
            vec![
                format!("0x{code:02X}"),
                name.to_string(),
                p2.to_string(),
                p3.to_string(),
            ]
        })
        .collect();
    assert_eq!(rows, expected);
    assert!(readme
        .contains(&format!("{:#010X}", dumpcrypt_core::fault::BUGCHECK_CODE).replace("0X", "0x")));
}
