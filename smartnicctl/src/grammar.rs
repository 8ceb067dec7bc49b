//! One way to name an interface: the interface a command acts on is its first argument
//! (`smartnicctl vf show enp1s0`, `addr show net1`, `sriov numvfs enp1s0 4`), as in `ip link
//! show DEV` and `ethtool -k DEV`, and as `link`, `ethtool` and `devlink` always did. Flags name
//! only other interfaces a command needs besides it (`link add --parent`, `--master`, `--peer`,
//! a route's `--dev`).
//!
//! The spellings of earlier versions (`--pf IFNAME`, `--pci BDF` for a PF, `--dev IFNAME`) still
//! work: [`rewrite_deprecated`] turns them into the positional form before the command line is
//! parsed, with a one-line note on stderr. They are not in `--help`.

use std::ffi::OsString;

/// `(group, subcommands, deprecated flags)`: where a flag used to name the interface.
const DEPRECATED: &[(&str, &[&str], &[&str])] = &[
    ("sriov", &["numvfs", "autoprobe"], &["--pf", "--pci"]),
    ("sriov", &["representor"], &["--pf"]),
    ("vf", &["show", "set"], &["--pf"]),
    ("addr", &["add", "del", "show"], &["--dev"]),
];

/// `args` (without the program name) with a deprecated interface flag of the command turned into
/// the first argument after the subcommand, and the note to print for it (`None`: unchanged).
pub fn rewrite_deprecated(mut args: Vec<OsString>) -> (Vec<OsString>, Option<String>) {
    let text = |a: &OsString| a.to_str().unwrap_or("").to_owned();
    let Some(g) = args.iter().position(|a| !text(a).starts_with('-')) else {
        return (args, None);
    };
    let group = text(&args[g]);
    let Some(s) = args
        .iter()
        .skip(g + 1)
        .position(|a| !text(a).starts_with('-'))
        .map(|i| i + g + 1)
    else {
        return (args, None);
    };
    let sub = text(&args[s]);
    let Some((_, _, flags)) = DEPRECATED
        .iter()
        .find(|(gr, subs, _)| *gr == group && subs.contains(&sub.as_str()))
    else {
        return (args, None);
    };
    for i in s + 1..args.len() {
        let a = text(&args[i]);
        for flag in *flags {
            let value = if a == *flag && i + 1 < args.len() {
                let v = args.remove(i + 1);
                args.remove(i);
                v
            } else if let Some(v) = a.strip_prefix(&format!("{flag}=")) {
                let v = OsString::from(v);
                args.remove(i);
                v
            } else {
                continue;
            };
            let shown = value.to_string_lossy().into_owned();
            args.insert(s + 1, value);
            let now: Vec<String> = args
                .iter()
                .map(|a| a.to_string_lossy().into_owned())
                .collect();
            let note = format!(
                "note: `{flag} {shown}` is deprecated: the interface is the first argument \
                 (smartnicctl {})",
                now.join(" ")
            );
            return (args, Some(note));
        }
    }
    (args, None)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rw(args: &[&str]) -> (Vec<String>, Option<String>) {
        let (a, note) = rewrite_deprecated(args.iter().map(OsString::from).collect());
        (
            a.into_iter().map(|s| s.into_string().unwrap()).collect(),
            note,
        )
    }

    #[test]
    fn old_spellings_become_the_first_argument_with_a_note() {
        for (old, new) in [
            (
                &["vf", "show", "--pf", "enp1s0", "-o", "json"][..],
                &["vf", "show", "enp1s0", "-o", "json"][..],
            ),
            (
                &["vf", "set", "--pf=enp1s0", "--vf", "0"],
                &["vf", "set", "enp1s0", "--vf", "0"],
            ),
            (
                &["sriov", "numvfs", "--pf", "enp1s0", "4"],
                &["sriov", "numvfs", "enp1s0", "4"],
            ),
            (
                &[
                    "sriov",
                    "numvfs",
                    "--pci",
                    "0000:01:00.0",
                    "0",
                    "--root",
                    "/h",
                ],
                &["sriov", "numvfs", "0000:01:00.0", "0", "--root", "/h"],
            ),
            (
                &["sriov", "autoprobe", "--pf", "p0", "off"],
                &["sriov", "autoprobe", "p0", "off"],
            ),
            (
                &["sriov", "representor", "--pf", "p0", "--vf", "3"],
                &["sriov", "representor", "p0", "--vf", "3"],
            ),
            (
                &["addr", "add", "10.0.0.2/24", "--dev", "net1"],
                &["addr", "add", "net1", "10.0.0.2/24"],
            ),
            (
                &["addr", "show", "--dev", "net1", "-o", "json"],
                &["addr", "show", "net1", "-o", "json"],
            ),
        ] {
            let (got, note) = rw(old);
            assert_eq!(got, new, "{old:?}");
            let note = note.unwrap();
            assert!(note.starts_with("note: `-"), "{note}");
            assert!(
                note.contains(&format!("(smartnicctl {})", new.join(" "))),
                "{note}"
            );
            assert_eq!(note.lines().count(), 1);
        }
    }

    #[test]
    fn other_flags_and_commands_are_left_alone() {
        for args in [
            &["sriov", "driver", "--pci", "0000:01:00.2", "vfio-pci"][..],
            &["route", "show", "--dev", "net1"],
            &["link", "add", "m0", "macvlan", "--parent", "eth0"],
            &["vf", "show", "enp1s0"],
            &["--help"],
            &[],
        ] {
            let (got, note) = rw(args);
            assert_eq!(got, args, "{args:?}");
            assert_eq!(note, None);
        }
    }
}
