//! Files for secrets on Windows: readable and writable by SYSTEM and Administrators only.
//! (On Unix a secret's file is created with mode 0600, like every output.)

use std::path::Path;

use crate::options::CliError;

/// Replaces the new, still empty file's ACL with one that grants full control to SYSTEM
/// (S-1-5-18) and the Administrators group (S-1-5-32-544) only, with no inherited entries,
/// by running `icacls` (present on every Windows since Vista). The SIDs, not the localized
/// group names, are given. An open handle keeps the access it was opened with.
pub fn restrict_to_administrators(path: &Path) -> Result<(), CliError> {
    let output = std::process::Command::new("icacls")
        .arg(path)
        .args([
            "/inheritance:r",
            "/grant:r",
            "*S-1-5-18:(F)",
            "*S-1-5-32-544:(F)",
        ])
        .output()
        .map_err(|e| CliError::Usage(format!("could not run icacls to protect the file: {e}")))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(CliError::Usage(format!(
            "{}: icacls could not restrict the file to SYSTEM and Administrators ({}): {}",
            path.display(),
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        )))
    }
}
