//! `completions` and `man` from the real binary, checked by the real consumers: bash sources
//! the script and completes through its function; fish loads its script and completes with
//! `complete -C`; zsh parses its script, registers it with compinit's `compdef` and defines
//! the completion function; groff renders every man page without a warning, and the main page
//! names every command.

use std::process::Command;

use crate::support::{bin, require_binary, text};

fn generated(args: &[&str]) -> String {
    let out = Command::new(bin()).args(args).output().unwrap();
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{args:?}: {stderr}");
    stdout
}

/// Completes `words` (the word being completed is the last one, maybe empty) with the sourced
/// script, the way readline calls the completion function; the offers, sorted.
fn bash_complete(script: &std::path::Path, words: &[&str]) -> Vec<String> {
    let bash = require_binary("bash").expect("bash");
    let cword = words.len() - 1;
    let quoted: Vec<String> = words.iter().map(|w| format!("'{w}'")).collect();
    let program = format!(
        "source {script}\n\
         spec=$(complete -p etcd-snapshot) || exit 3\n\
         fn=$(sed -n 's/.* -F \\([^ ]*\\) .*/\\1/p' <<<\"$spec\")\n\
         COMP_WORDS=({words}); COMP_CWORD={cword}; COMP_LINE=\"${{COMP_WORDS[*]}}\"; COMP_POINT=${{#COMP_LINE}}\n\
         \"$fn\" etcd-snapshot \"${{COMP_WORDS[COMP_CWORD]}}\" \"${{COMP_WORDS[COMP_CWORD-1]}}\"\n\
         printf '%s\\n' \"${{COMPREPLY[@]}}\"",
        script = script.display(),
        words = quoted.join(" "),
    );
    let out = Command::new(bash)
        .args(["--norc", "-c", &program])
        .output()
        .unwrap();
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "bash failed: {stderr}");
    let mut offered: Vec<String> = stdout.lines().map(|l| l.trim().to_string()).collect();
    offered.sort();
    offered
}

#[test]
fn the_bash_completion_script_loads_and_completes_commands_and_flags() {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("etcd-snapshot.bash");
    std::fs::write(&script, generated(&["completions", "bash"])).unwrap();

    let commands = bash_complete(&script, &["etcd-snapshot", "s"]);
    assert_eq!(commands, ["save", "server"], "completing `s`");
    let all = bash_complete(&script, &["etcd-snapshot", ""]);
    for command in [
        "save",
        "ls",
        "delete",
        "prune",
        "restore",
        "config",
        "crd",
        "completions",
        "man",
    ] {
        assert!(
            all.iter().any(|c| c == command),
            "{command} not offered: {all:?}"
        );
    }
    // Flags are offered too at a positional; the words offered are the shells.
    let mut shells = bash_complete(&script, &["etcd-snapshot", "completions", ""]);
    shells.retain(|w| !w.starts_with('-'));
    assert_eq!(shells, ["bash", "fish", "zsh"]);
    let formats = bash_complete(&script, &["etcd-snapshot", "ls", "-o", ""]);
    assert_eq!(formats, ["json", "table", "wide", "yaml"]);
    let flags = bash_complete(&script, &["etcd-snapshot", "save", "--etcd-s3-buc"]);
    assert_eq!(flags, ["--etcd-s3-bucket", "--etcd-s3-bucket-lookup-type"]);
}

/// Runs `program` with the shell `shell` (no user configuration); its standard output.
fn shell_output(shell: &str, args: &[&str], program: &str) -> String {
    let path = require_binary(shell).expect(shell);
    let home = tempfile::tempdir().unwrap();
    let out = Command::new(path)
        .args(args)
        .arg(program)
        // A private HOME and XDG dirs: fish writes its history and universal variables there.
        .env("HOME", home.path())
        .env("XDG_CONFIG_HOME", home.path().join("config"))
        .env("XDG_DATA_HOME", home.path().join("data"))
        .output()
        .unwrap();
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{shell} failed: {stderr}\n{stdout}");
    stdout
}

/// The words fish offers for `line` (`complete -C` prints `word<TAB>description`), sorted.
fn fish_complete(script: &std::path::Path, line: &str) -> Vec<String> {
    let program = format!("source {}; complete -C '{line}'", script.display());
    let stdout = shell_output("fish", &["--no-config", "-c"], &program);
    let mut offered: Vec<String> = stdout
        .lines()
        .map(|l| l.split('\t').next().unwrap().to_string())
        .collect();
    offered.sort();
    offered
}

#[test]
fn the_fish_completion_script_loads_and_completes_commands_and_flags() {
    if require_binary("fish").is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("etcd-snapshot.fish");
    std::fs::write(&script, generated(&["completions", "fish"])).unwrap();

    let commands = fish_complete(&script, "etcd-snapshot s");
    assert_eq!(commands, ["save", "server"], "completing `s`");
    let all = fish_complete(&script, "etcd-snapshot ");
    for command in ["ls", "delete", "prune", "restore", "completions", "man"] {
        assert!(
            all.iter().any(|c| c == command),
            "{command} not offered: {all:?}"
        );
    }
    // Positional values come from the lines `completion_script` adds for fish.
    let shells = fish_complete(&script, "etcd-snapshot completions ");
    assert_eq!(shells, ["bash", "fish", "zsh"]);
    let formats = fish_complete(&script, "etcd-snapshot ls -o ");
    assert_eq!(formats, ["json", "table", "wide", "yaml"]);
    let flags = fish_complete(&script, "etcd-snapshot save --etcd-s3-buc");
    assert_eq!(flags, ["--etcd-s3-bucket", "--etcd-s3-bucket-lookup-type"]);
}

#[test]
fn the_zsh_completion_script_parses_and_registers_with_compinit() {
    if require_binary("zsh").is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("_etcd-snapshot");
    std::fs::write(&script, generated(&["completions", "zsh"])).unwrap();

    // -n: read and parse only; a syntax error fails here.
    shell_output("zsh", &["-f", "-n"], &script.display().to_string());
    // Sourced after compinit, as a completion dir's file is, it registers itself for the
    // binary; its functions complete the commands and the shells.
    let program = format!(
        "autoload -Uz compinit && compinit -u -d {dump}; source {script}; \
         print -r -- \"registered=${{_comps[etcd-snapshot]}}\"; \
         whence -f _etcd-snapshot _etcd-snapshot_commands",
        dump = dir.path().join("zcompdump").display(),
        script = script.display(),
    );
    let stdout = shell_output("zsh", &["-f", "-c"], &program);
    assert!(
        stdout.starts_with("registered=_etcd-snapshot\n"),
        "{stdout:.300}"
    );
    for offer in [
        "save:",
        "server:",
        "ls:",
        "restore:",
        "completions:",
        ":(bash zsh fish)",
    ] {
        assert!(stdout.contains(offer), "the zsh functions lack {offer}");
    }
}

#[test]
fn every_man_page_renders_with_groff_and_the_main_page_names_every_command() {
    let Some(groff) = require_binary("groff") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(bin())
        .args(["man", "--out-dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out).1);
    let main = generated(&["man"]);
    assert_eq!(
        std::fs::read_to_string(dir.path().join("etcd-snapshot.1")).unwrap(),
        main
    );

    let mut pages: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    pages.sort();
    for page in &pages {
        let rendered = Command::new(&groff)
            .args(["-man", "-Tutf8", "-ww", "-P-cbou"])
            .arg(dir.path().join(page))
            .output()
            .unwrap();
        let (stdout, stderr) = text(&rendered);
        assert!(
            rendered.status.success() && stderr.is_empty(),
            "{page}: {stderr}"
        );
        assert!(
            stdout.contains("NAME") && stdout.contains("SYNOPSIS"),
            "{page}: {stdout}"
        );
    }
    let rendered = Command::new(&groff)
        .args(["-man", "-Tutf8", "-P-cbou"])
        .arg(dir.path().join("etcd-snapshot.1"))
        .output()
        .unwrap();
    let main_text = text(&rendered).0;
    for command in [
        "server",
        "save",
        "ls",
        "delete",
        "prune",
        "restore",
        "config",
        "crd",
        "completions",
        "man",
    ] {
        let reference = format!("etcd-snapshot-{command}(1)");
        assert!(
            main_text.contains(&reference),
            "main page lacks {reference}"
        );
        assert!(
            pages.contains(&format!("etcd-snapshot-{command}.1")),
            "no page for {command}: {pages:?}"
        );
    }
}
