//! The parser must never panic, whatever the bytes: every input either parses
//! or gives a located error, and a parsed file's dump and JSON render.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Ok(tree) = berth_grammar::parse_syntax(&text) {
        let _ = tree.dump();
    }
    match berth_grammar::parse(&text) {
        Ok(dockerfile) => {
            let _ = format!("{dockerfile:?}");
        }
        Err(e) => {
            assert!(e.span.start_line >= 1);
            let _ = e.to_string();
        }
    }
    let lex = berth_grammar::shell::ShellLex::new('\\');
    let vars = vec![("A".to_string(), "x y".to_string())];
    let _ = lex.expand(&text, &vars);
});
