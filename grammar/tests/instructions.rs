//! Our own cases for what BuildKit's parser cases do not cover: the typed
//! instructions and their flags, directives, line handling, heredocs, spans
//! and error messages.

use berth_grammar::*;

fn parse_ok(src: &str) -> Dockerfile {
    parse(src).unwrap_or_else(|e| panic!("should parse:\n{src}\n{e}"))
}

fn parse_err(src: &str) -> ParseError {
    match parse(src) {
        Ok(d) => panic!("should fail:\n{src}\n{d:?}"),
        Err(e) => e,
    }
}

fn commands(src: &str) -> Vec<Command> {
    parse_ok(src)
        .instructions
        .into_iter()
        .map(|i| i.command)
        .collect()
}

fn values(words: &[Word]) -> Vec<&str> {
    words.iter().map(|w| w.value.as_str()).collect()
}

#[test]
fn from_with_platform_and_stage_name() {
    let c = commands("from --platform=linux/arm64 Busybox:1.36 As Build\nFROM build\n");
    let Command::From(f) = &c[0] else {
        panic!("{c:?}")
    };
    assert_eq!(f.image.value, "Busybox:1.36");
    assert_eq!(
        f.platform.as_ref().map(|p| p.value.as_str()),
        Some("linux/arm64")
    );
    assert_eq!(f.name.as_ref().map(|n| n.value.as_str()), Some("build"));
    let Command::From(f) = &c[1] else { panic!() };
    assert!(f.name.is_none() && f.platform.is_none());
    assert!(parse_err("FROM a b\n")
        .message
        .contains("FROM requires either one or three arguments"));
    assert!(parse_err("FROM a AS 1abc\n")
        .message
        .contains("invalid name for build stage"));
}

#[test]
fn run_forms_and_flags() {
    let c = commands(
        "FROM a\nRUN echo hi\nRUN [\"echo\", \"hi\"]\nRUN [\"broken\nRUN --mount=type=cache,target=/root/.cache,id=pip,sharing=locked --mount=type=secret,id=tok --network=none --security=insecure make\n",
    );
    let Command::Run(r) = &c[1] else { panic!() };
    assert!(matches!(&r.command, CommandLine::Shell { command } if command.value == "echo hi"));
    let Command::Run(r) = &c[2] else { panic!() };
    assert!(matches!(&r.command, CommandLine::Exec { args } if values(args) == ["echo", "hi"]));
    let Command::Run(r) = &c[3] else { panic!() };
    assert!(matches!(&r.command, CommandLine::Shell { command } if command.value == "[\"broken"));
    let Command::Run(r) = &c[4] else { panic!() };
    assert_eq!(r.mounts.len(), 2);
    assert_eq!(r.mounts[0].kind, MountType::Cache);
    assert_eq!(r.mounts[0].target.as_deref(), Some("/root/.cache"));
    assert_eq!(r.mounts[0].id.as_deref(), Some("pip"));
    assert_eq!(r.mounts[0].sharing.as_deref(), Some("locked"));
    assert_eq!(r.mounts[1].kind, MountType::Secret);
    assert_eq!(r.network.as_ref().map(|n| n.value.as_str()), Some("none"));
    assert_eq!(
        r.security.as_ref().map(|n| n.value.as_str()),
        Some("insecure")
    );
    assert!(parse_err("FROM a\nRUN --network=bridge x\n")
        .message
        .contains("unsupported network mode"));
    assert!(parse_err("FROM a\nRUN --mount=type=cache x\n")
        .message
        .contains("mount target must be specified"));
    assert!(
        parse_err("FROM a\nRUN --mount=type=cache,target=/x,bogus=1 x\n")
            .message
            .contains("unexpected key 'bogus'")
    );
    assert!(parse_err("FROM a\nRUN\n")
        .message
        .contains("RUN requires at least one argument"));
}

#[test]
fn mount_options_naming_build_args_wait_for_the_builder() {
    // `type=$T` cannot be checked before expansion: the mount keeps its text.
    let c = commands("FROM a\nRUN --mount=type=$T,target=$DIR x\n");
    let Command::Run(r) = &c[1] else { panic!() };
    assert_eq!(r.mounts[0].raw, "type=$T,target=$DIR");
    let vars = |v: &str| -> Result<String, String> {
        Ok(match v {
            "$T" => "tmpfs".into(),
            "$DIR" => "/scratch".into(),
            "$ID" => "a,b".into(),
            other => other.to_string(),
        })
    };
    let m = berth_grammar::expand_mount(&r.mounts[0].raw, r.mounts[0].span, vars).unwrap();
    assert_eq!(m.kind, MountType::Tmpfs);
    assert_eq!(m.target.as_deref(), Some("/scratch"));
    // A comma an expansion brings in stays in its value; bare flags stay.
    let m = berth_grammar::expand_mount("type=cache,id=$ID,target=/c,ro", r.mounts[0].span, vars)
        .unwrap();
    assert_eq!((m.id.as_deref(), m.readonly), (Some("a,b"), Some(true)));
    // Once expanded, a bad value is an error as it would have been.
    let err =
        berth_grammar::expand_mount("type=$X,target=/x", r.mounts[0].span, |_| Ok("nfs".into()))
            .unwrap_err();
    assert!(err.contains("unsupported mount type \"nfs\""), "{err}");
    // Without a variable, errors still come at parse time.
    assert!(parse_err("FROM a\nRUN --mount=type=nfs,target=/x x\n")
        .message
        .contains("unsupported mount type"));
}

#[test]
fn copy_and_add_flags() {
    let c = commands(
        "FROM a\nCOPY --from=build --chown=app:app --chmod=0755 --link --parents --exclude=*.md --exclude=tmp a b /dst/\nADD --checksum=sha256:abc --keep-git-dir=true https://example.com/x.tgz /x\nCOPY [\"a b\", \"/c d/\"]\n",
    );
    let Command::Copy(cp) = &c[1] else { panic!() };
    assert_eq!(cp.from.as_ref().unwrap().value, "build");
    assert_eq!(cp.chown.as_ref().unwrap().value, "app:app");
    assert_eq!(cp.chmod.as_ref().unwrap().value, "0755");
    assert!(cp.link && cp.parents);
    assert_eq!(values(&cp.exclude), ["*.md", "tmp"]);
    assert_eq!(cp.sources.len(), 2);
    assert_eq!(cp.dest.value, "/dst/");
    let Command::Add(add) = &c[2] else { panic!() };
    assert_eq!(add.checksum.as_ref().unwrap().value, "sha256:abc");
    assert_eq!(add.keep_git_dir, Some(true));
    let Command::Copy(cp) = &c[3] else { panic!() };
    assert!(cp.json);
    assert!(matches!(&cp.sources[0], Source::Path(w) if w.value == "a b"));
    assert_eq!(cp.dest.value, "/c d/");

    let e = parse_err("FROM a\nCOPY onlyone\n");
    assert!(e
        .message
        .contains("COPY requires at least two arguments, but only one was provided"));
    let e = parse_err("FROM a\nCOPY --from x y\n");
    assert_eq!(e.message, "missing a value on flag: --from");
    let e = parse_err("FROM a\nCOPY --link=maybe x y\n");
    assert!(e.message.contains("expecting boolean value for flag link"));
    let e = parse_err("FROM a\nADD --from=x a b\n");
    assert_eq!(e.message, "unknown flag: --from");
    let e = parse_err("FROM a\nCOPY --chmod=999 a b\n");
    assert!(e.message.contains("invalid chmod"));
    let e = parse_err("FROM a\nCOPY --from=a --from=b x y\n");
    assert!(e.message.contains("duplicate flag"));
}

#[test]
fn env_label_arg_forms() {
    let c = commands("FROM a\nENV A 1 2 3\nENV B=1 C=\"two words\"\nLABEL x=y \"z\"=w\nARG V\nARG W=1 X=\"q r\"\n");
    let Command::Env { pairs } = &c[1] else {
        panic!()
    };
    assert_eq!(
        (pairs[0].key.value.as_str(), pairs[0].value.value.as_str()),
        ("A", "1 2 3")
    );
    let Command::Env { pairs } = &c[2] else {
        panic!()
    };
    assert_eq!(pairs[1].value.value, "\"two words\"");
    let Command::Label { pairs } = &c[3] else {
        panic!()
    };
    assert_eq!(pairs[1].key.value, "\"z\"");
    let Command::Arg { args } = &c[4] else {
        panic!()
    };
    assert_eq!(args[0].name.value, "V");
    assert!(args[0].default.is_none());
    let Command::Arg { args } = &c[5] else {
        panic!()
    };
    assert_eq!(args[1].name.value, "X");
    assert_eq!(args[1].default.as_ref().unwrap().value, "\"q r\"");
    assert!(parse_err("FROM a\nENV =x\n")
        .message
        .contains("ENV names can not be blank"));
    assert!(parse_err("FROM a\nENV a=1 b\n")
        .message
        .contains("can't find = in \"b\""));
    assert!(parse_err("FROM a\nLABEL\n")
        .message
        .contains("LABEL requires at least one argument"));
}

#[test]
fn single_value_and_list_instructions() {
    let c = commands(
        "FROM a\nMAINTAINER Jane <j@x>\nUSER app:app\nWORKDIR /srv/app\nSTOPSIGNAL SIGQUIT\nEXPOSE 80 443/tcp\nVOLUME /data /cache\nVOLUME [\"/a\"]\nENTRYPOINT [\"/bin/app\"]\nCMD echo hi\nSHELL [\"/bin/bash\", \"-c\"]\n",
    );
    assert!(matches!(&c[1], Command::Maintainer { name } if name.value == "Jane <j@x>"));
    assert!(matches!(&c[2], Command::User { user } if user.value == "app:app"));
    assert!(matches!(&c[3], Command::Workdir { path } if path.value == "/srv/app"));
    assert!(matches!(&c[4], Command::StopSignal { signal } if signal.value == "SIGQUIT"));
    assert!(matches!(&c[5], Command::Expose { ports } if values(ports) == ["80", "443/tcp"]));
    assert!(matches!(&c[6], Command::Volume { paths } if values(paths) == ["/data", "/cache"]));
    assert!(matches!(&c[7], Command::Volume { paths } if values(paths) == ["/a"]));
    assert!(
        matches!(&c[8], Command::Entrypoint { command: CommandLine::Exec { args } } if values(args) == ["/bin/app"])
    );
    assert!(matches!(&c[10], Command::Shell { shell } if values(shell) == ["/bin/bash", "-c"]));
    // CMD --help is a flag to the parser, as docker reads it, and CMD takes none.
    assert!(parse("FROM a\nCMD --help\n").is_err());
    assert!(parse_err("FROM a\nSHELL /bin/sh -c\n")
        .message
        .contains("SHELL requires the arguments to be in JSON form"));
    assert!(parse_err("FROM a\nUSER\n")
        .message
        .contains("USER requires exactly one argument"));
}

#[test]
fn onbuild_wraps_instructions() {
    let c = commands("FROM a\nONBUILD COPY --chown=1 . /app\nonbuild run make\n");
    let Command::Onbuild { trigger } = &c[1] else {
        panic!()
    };
    assert!(matches!(&trigger.command, Command::Copy(cp) if cp.chown.is_some()));
    let Command::Onbuild { trigger } = &c[2] else {
        panic!()
    };
    assert!(matches!(&trigger.command, Command::Run(_)));
    assert!(parse_err("FROM a\nONBUILD ONBUILD RUN x\n")
        .message
        .contains("Chaining ONBUILD"));
    assert!(parse_err("FROM a\nONBUILD FROM x\n")
        .message
        .contains("FROM isn't allowed as an ONBUILD trigger"));
    assert!(parse_err("FROM a\nONBUILD MAINTAINER x\n")
        .message
        .contains("MAINTAINER isn't allowed"));
}

#[test]
fn healthcheck_none_and_cmd() {
    let c = commands("FROM a\nHEALTHCHECK NONE\nHEALTHCHECK --interval=30s --timeout=1m30s --start-period=5s --start-interval=1s --retries=3 CMD curl -f http://localhost/\nHEALTHCHECK CMD [\"/check\"]\n");
    let Command::Healthcheck(h) = &c[1] else {
        panic!()
    };
    assert!(h.test.is_none());
    let Command::Healthcheck(h) = &c[2] else {
        panic!()
    };
    assert_eq!(h.interval_ns, Some(30_000_000_000));
    assert_eq!(h.timeout_ns, Some(90_000_000_000));
    assert_eq!(h.start_interval_ns, Some(1_000_000_000));
    assert_eq!(h.retries, Some(3));
    assert!(
        matches!(&h.test, Some(CommandLine::Shell { command }) if command.value == "curl -f http://localhost/")
    );
    let Command::Healthcheck(h) = &c[3] else {
        panic!()
    };
    assert!(matches!(&h.test, Some(CommandLine::Exec { args }) if values(args) == ["/check"]));
    assert!(parse_err("FROM a\nHEALTHCHECK CONNECT x\n")
        .message
        .contains("Unknown type \"CONNECT\""));
    assert!(parse_err("FROM a\nHEALTHCHECK --interval=1us CMD x\n")
        .message
        .contains("cannot be less than 1ms"));
    assert!(parse_err("FROM a\nHEALTHCHECK --retries=-1 CMD x\n")
        .message
        .contains("--retries cannot be negative"));
    assert!(parse_err("FROM a\nHEALTHCHECK NONE x\n")
        .message
        .contains("takes no arguments"));
    assert!(parse_err("FROM a\nHEALTHCHECK CMD\n")
        .message
        .contains("Missing command after HEALTHCHECK CMD"));
}

#[test]
fn directives_escape_and_line_handling() {
    let d = parse_ok("# syntax=docker/dockerfile:1.7\n# check=skip=all\n# escape=`\nFROM a\nRUN echo C:\\dir `\n  && dir\n");
    assert_eq!(d.directive("syntax"), Some("docker/dockerfile:1.7"));
    assert_eq!(d.directive("check"), Some("skip=all"));
    assert_eq!(d.escape, '`');
    let Command::Run(r) = &d.instructions[1].command else {
        panic!()
    };
    assert!(
        matches!(&r.command, CommandLine::Shell { command } if command.value == "echo C:\\dir   && dir")
    );
    // A directive after an instruction or a comment is just a comment.
    let d = parse_ok("# hello\n# escape=`\nFROM a\n");
    assert_eq!(d.escape, '\\');
    assert!(parse_err("# escape=x\nFROM a\n")
        .message
        .contains("invalid escape token"));
    assert!(parse_err("# escape=\\\n# escape=`\nFROM a\n")
        .message
        .contains("only one escape parser directive"));
    // CRLF, a byte-order mark, trailing blanks after the escape, comments and
    // empty lines inside a continuation.
    let d = parse_ok("\u{feff}FROM a\r\nRUN one \\  \r\n# comment\r\n\r\n  two\r\n");
    let Command::Run(r) = &d.instructions[1].command else {
        panic!()
    };
    assert!(matches!(&r.command, CommandLine::Shell { command } if command.value == "one   two"));
    assert_eq!(d.warnings.len(), 1);
    assert_eq!(d.instructions[1].span.start_line, 2);
    assert_eq!(d.instructions[1].span.end_line, 5);
}

#[test]
fn heredocs_on_run_copy_add() {
    let src = "FROM a\nRUN <<EOF\necho $HOME\nEOF\nRUN <<-'EOT' bash\n\techo lit\n\tEOT\nCOPY <<one.txt <<\"two.txt\" /dst/\n\tfirst\none.txt\nsecond $X\ntwo.txt\nADD <<-A /a\n\tchomped\nA\nRUN 3<<X cat /dev/fd/3\nx\nX\n";
    let d = parse_ok(src);
    let Command::Run(r) = &d.instructions[1].command else {
        panic!()
    };
    assert_eq!(r.heredocs.len(), 1);
    assert_eq!(
        (
            r.heredocs[0].name.as_str(),
            r.heredocs[0].content.as_str(),
            r.heredocs[0].expand
        ),
        ("EOF", "echo $HOME\n", true)
    );
    assert_eq!(r.heredocs[0].span.start_line, 3);
    assert_eq!(d.instructions[1].span.end_line, 4);
    let Command::Run(r) = &d.instructions[2].command else {
        panic!()
    };
    assert!(r.heredocs[0].chomp && !r.heredocs[0].expand);
    assert_eq!(r.heredocs[0].content, "\techo lit\n");
    assert!(
        matches!(&r.command, CommandLine::Shell { command } if command.value == "<<-'EOT' bash")
    );
    let Command::Copy(cp) = &d.instructions[3].command else {
        panic!()
    };
    assert_eq!(cp.sources.len(), 2);
    assert!(
        matches!(&cp.sources[0], Source::Heredoc(h) if h.name == "one.txt" && h.content == "\tfirst\n")
    );
    assert!(matches!(&cp.sources[1], Source::Heredoc(h) if h.name == "two.txt" && !h.expand));
    let Command::Add(add) = &d.instructions[4].command else {
        panic!()
    };
    assert!(matches!(&add.sources[0], Source::Heredoc(h) if h.content == "chomped\n"));
    let Command::Run(r) = &d.instructions[5].command else {
        panic!()
    };
    assert_eq!(r.heredocs[0].fd, 3);
    let e = parse_err("FROM a\nRUN <<EOF\necho\n");
    assert!(e.message.contains("unterminated heredoc"));
    assert_eq!(e.span.start_line, 2);
    assert!(parse_err("FROM a\nCOPY x <<EOF\nEOF\n")
        .message
        .contains("cannot accept a heredoc as a destination"));
}

#[test]
fn spans_point_at_the_source() {
    let src = "FROM a\nCOPY --chown=1:1 \\\n  src/ /dst/\n";
    let d = parse_ok(src);
    let Command::Copy(cp) = &d.instructions[1].command else {
        panic!()
    };
    let Source::Path(w) = &cp.sources[0] else {
        panic!()
    };
    assert_eq!(&src[w.span.start..w.span.end], "src/");
    assert_eq!((w.span.start_line, w.span.start_column), (3, 3));
    assert_eq!(&src[cp.dest.span.start..cp.dest.span.end], "/dst/");
    let chown = cp.chown.as_ref().unwrap();
    assert_eq!(&src[chown.span.start..chown.span.end], "--chown=1:1");
}

#[test]
fn errors_are_located_with_caret_and_suggestion() {
    let e = parse_err("FROM a\nFROMM b\n").in_file("app/Dockerfile");
    assert_eq!(e.message, "unknown instruction: FROMM");
    assert_eq!(e.help.as_deref(), Some("did you mean `FROM`?"));
    let shown = e.to_string();
    assert!(
        shown.starts_with("app/Dockerfile:2:1: unknown instruction: FROMM"),
        "{shown}"
    );
    assert!(shown.contains("2 | FROMM b\n  | ^^^^^"), "{shown}");
    let e = parse_err("FROM a\nCOPY --chwon=1 a b\n");
    assert_eq!(e.help.as_deref(), Some("did you mean `--chown`?"));
    assert_eq!((e.span.start_line, e.span.start_column), (2, 6));
    let e = parse_err("FROM a\nCMD [\"a\", 1]\n");
    assert!(e
        .message
        .contains("arrays must be comprised of strings only"));
    assert_eq!(e.span.start_column, 11);
    let e = parse_err("\n\n# only a comment\n");
    assert_eq!(e.message, "file with no instructions");
}

#[test]
fn never_panics_on_odd_bytes() {
    for src in [
        "\\",
        "`",
        "\u{0}",
        "RUN [[[[[[[[[[",
        "FROM \"",
        "ENV '",
        "RUN <<",
        "COPY <<'",
        "# escape=`\n`",
        "A\u{a0}B",
        "RUN \u{2028}x",
        "ONBUILD",
        "HEALTHCHECK \t",
    ] {
        let _ = parse(src);
        let _ = parse_syntax(src);
    }
    let deep = format!("CMD {}", "[".repeat(100_000));
    let _ = parse(&deep);
    let _ = parse_bytes(&[0xff, 0xfe, b'F', b'R', b'O', b'M', b' ', 0xc3]);
}
