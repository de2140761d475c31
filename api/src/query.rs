//! A request's query string, with docker's forms of booleans and filters.

use std::collections::BTreeMap;

#[derive(Debug, Default)]
pub struct Query(Vec<(String, String)>);

impl Query {
    pub fn parse(q: Option<&str>) -> Query {
        Query(
            form_urlencoded::parse(q.unwrap_or("").as_bytes())
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
        )
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Every value of a repeated key (`t=a&t=b`).
    pub fn all(&self, key: &str) -> Vec<String> {
        self.0
            .iter()
            .filter(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
            .collect()
    }

    /// moby's boolean: absent, "", "0", "no", "false", "none" are false.
    pub fn bool(&self, key: &str) -> bool {
        self.get(key).is_some_and(|v| {
            !matches!(
                v.to_ascii_lowercase().as_str(),
                "" | "0" | "no" | "false" | "none"
            )
        })
    }

    /// `filters=` in both encodings: the Go client's `{"k":{"v":true}}`
    /// and docker-py's `{"k":["v"]}`.
    pub fn filters(&self) -> Result<BTreeMap<String, Vec<String>>, String> {
        let Some(raw) = self.get("filters").filter(|s| !s.is_empty()) else {
            return Ok(BTreeMap::new());
        };
        let v: serde_json::Value =
            serde_json::from_str(raw).map_err(|e| format!("invalid filter: {e}"))?;
        let mut out = BTreeMap::new();
        let obj = v.as_object().ok_or("invalid filter: not an object")?;
        for (k, vals) in obj {
            let list: Vec<String> = match vals {
                serde_json::Value::Array(a) => a
                    .iter()
                    .filter_map(|x| x.as_str().map(String::from))
                    .collect(),
                serde_json::Value::Object(m) => m
                    .iter()
                    .filter(|(_, on)| on.as_bool().unwrap_or(true))
                    .map(|(x, _)| x.clone())
                    .collect(),
                serde_json::Value::String(s) => vec![s.clone()],
                _ => return Err(format!("invalid filter: {k}")),
            };
            out.insert(k.clone(), list);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::Query;

    #[test]
    fn both_filter_encodings_and_mobys_booleans() {
        let go = Query::parse(Some(
            "filters=%7B%22label%22%3A%7B%22a%3Db%22%3Atrue%7D%7D&all=1",
        ));
        assert_eq!(go.filters().unwrap()["label"], ["a=b"]);
        assert!(go.bool("all"));
        let py = Query::parse(Some(
            "filters=%7B%22label%22%3A%5B%22a%3Db%22%5D%7D&all=false",
        ));
        assert_eq!(py.filters().unwrap()["label"], ["a=b"]);
        assert!(!py.bool("all"));
        assert!(Query::parse(Some("filters=nope")).filters().is_err());
    }
}
