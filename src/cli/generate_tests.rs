use super::*;
use crate::cli::{self, Command as Parsed};

/// The visible subcommands of the real tree, the ones users type.
fn visible_subcommands() -> Vec<String> {
    cli::command()
        .get_subcommands()
        .filter(|s| !s.is_hide_set())
        .map(|s| s.get_name().to_string())
        .collect()
}

#[test]
fn completions_and_man_parse_without_config() {
    let parsed = cli::parse(["es", "completions", "zsh"]).unwrap();
    assert_eq!(parsed.command, Parsed::Completions(Shell::Zsh));
    let parsed = cli::parse(["es", "man", "--out-dir", "/tmp/pages"]).unwrap();
    assert_eq!(
        parsed.command,
        Parsed::Man {
            dir: Some(PathBuf::from("/tmp/pages"))
        }
    );
    assert_eq!(
        cli::parse(["es", "man"]).unwrap().command,
        Parsed::Man { dir: None }
    );
}

#[test]
fn an_unknown_shell_is_a_usage_error_naming_the_choices() {
    let err = cli::parse(["es", "completions", "tcsh"]).unwrap_err();
    let text = err.to_string();
    assert!(text.contains("tcsh"), "{text}");
    assert!(text.contains("bash") && text.contains("fish"), "{text}");
    assert!(cli::parse(["es", "completions"]).is_err());
}

#[test]
fn every_shell_name_maps_to_its_shell() {
    for name in Shell::NAMES {
        let shell = Shell::from_name(name).unwrap();
        let script = String::from_utf8(completion_script(shell, cli::command())).unwrap();
        for sub in visible_subcommands() {
            assert!(script.contains(&sub), "{name} script lacks {sub}");
        }
    }
    assert_eq!(Shell::from_name("powershell"), None);
}

#[test]
fn the_zsh_and_fish_scripts_register_for_the_binary() {
    let zsh = String::from_utf8(completion_script(Shell::Zsh, cli::command())).unwrap();
    assert!(zsh.starts_with("#compdef etcd-snapshot"), "{zsh:.80}");
    let fish = String::from_utf8(completion_script(Shell::Fish, cli::command())).unwrap();
    assert!(fish.contains("complete -c etcd-snapshot"), "{fish:.200}");
}

#[test]
fn man_pages_cover_every_visible_command_and_no_hidden_one() {
    let pages = man_pages(cli::command());
    let names: Vec<&str> = pages.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names[0], "etcd-snapshot.1");
    for sub in visible_subcommands() {
        let page = format!("etcd-snapshot-{sub}.1");
        assert!(names.contains(&page.as_str()), "no {page} in {names:?}");
    }
    for nested in [
        "etcd-snapshot-config-show.1",
        "etcd-snapshot-config-validate.1",
    ] {
        assert!(names.contains(&nested), "no {nested} in {names:?}");
    }
    // The RKE2 spelling `etcd-snapshot etcd-snapshot` is hidden, and `help` is not a page.
    assert!(
        !names.contains(&"etcd-snapshot-etcd-snapshot.1"),
        "{names:?}"
    );
    assert!(!names.contains(&"etcd-snapshot-help.1"), "{names:?}");
    for (name, roff) in &pages {
        let text = String::from_utf8_lossy(roff);
        let title = name.trim_end_matches(".1");
        assert!(text.contains("\n.TH "), "{name} has no .TH title line");
        assert!(text.contains(title), "{name} does not name {title}");
    }
}

#[test]
fn man_pages_are_written_to_a_directory_replacing_old_ones() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("man1");
    let pages = man_pages(cli::command());
    std::fs::create_dir(&out).unwrap();
    std::fs::write(out.join("etcd-snapshot.1"), b"stale").unwrap();
    write_man_pages(&out, &pages).unwrap();
    for (name, roff) in &pages {
        assert_eq!(&std::fs::read(out.join(name)).unwrap(), roff, "{name}");
    }
    // Nothing but the pages (no temp files left behind).
    assert_eq!(std::fs::read_dir(&out).unwrap().count(), pages.len());
}

#[test]
fn writing_into_a_file_path_names_the_directory() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("not-a-dir");
    std::fs::write(&file, b"x").unwrap();
    let err = write_man_pages(&file, &man_pages(cli::command())).unwrap_err();
    assert!(err.to_string().contains("not-a-dir"), "{err}");
}

#[test]
fn every_bash_state_the_word_walk_reaches_has_its_case_label() {
    let script = String::from_utf8(completion_script(Shell::Bash, cli::command())).unwrap();
    let states: Vec<&str> = script
        .lines()
        .filter_map(|l| l.trim().strip_prefix("cmd=\""))
        .filter_map(|l| l.strip_suffix('"'))
        .filter(|s| !s.is_empty())
        .collect();
    assert!(
        states.contains(&"etcd__snapshot__subcmd__save"),
        "{states:?}"
    );
    for state in states {
        let label = format!("\n        {state})\n");
        assert!(script.contains(&label), "no case label for {state}");
    }
}

#[test]
fn relabelling_touches_only_the_binary_prefix_of_case_labels() {
    let script = "cmd=\"my__tool__subcmd__a\"\n        my__subcmd__tool__subcmd__a)\n        my__subcmd__tool__subcmd__b__subcmd__c)\n";
    assert_eq!(
        fix_bash_case_labels(script, "my-tool"),
        "cmd=\"my__tool__subcmd__a\"\n        my__tool__subcmd__a)\n        my__tool__subcmd__b__subcmd__c)\n"
    );
    assert_eq!(fix_bash_case_labels(script, "plain"), script);
}
