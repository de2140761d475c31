//! compose-go's merge cases (merge/merge.jsonl): a base file, overrides
//! merged over it in order, then unicity; the tree compared with the
//! expected one.

mod common;
use berth_compose::{merge, yaml};
use common::check_each;
use serde_json::Value;

fn tree(text: &str) -> Result<Value, String> {
    let docs = yaml::parse(text).map_err(|e| e.to_string())?;
    Ok(docs
        .into_iter()
        .next()
        .map(|d| d.tree)
        .unwrap_or(Value::Null))
}

#[test]
fn trees_merge_as_compose_go_merges_them() {
    check_each("merge/merge.jsonl", |row| {
        let mut got = tree(row["base"].as_str().unwrap_or_default())?;
        for o in row["overrides"].as_array().into_iter().flatten() {
            got = merge::merge(got, tree(o.as_str().unwrap_or_default())?);
        }
        if row["unicity"] == true {
            merge::unicity(&mut got);
        }
        let want = tree(row["expected"].as_str().unwrap_or_default())?;
        if got != want {
            return Err(format!(
                "got\n{}\nwant\n{}",
                serde_json::to_string_pretty(&got).unwrap_or_default(),
                serde_json::to_string_pretty(&want).unwrap_or_default()
            ));
        }
        Ok(())
    });
}
