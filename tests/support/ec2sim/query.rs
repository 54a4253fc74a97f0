//! The EC2 Query protocol's request side: form parameters with flattened lists
//! (`SubnetId.1`, `Filter.2.Value.1`, `TagSpecification.1.Tag.3.Key`), filters with `*` and `?`
//! wildcards, and pagination by `MaxResults` and an opaque `NextToken`.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use super::error::ApiError;

pub type Tags = BTreeMap<String, String>;

pub struct Params(HashMap<String, String>);

impl Params {
    pub fn parse(body: &[u8]) -> Params {
        Params(form_urlencoded::parse(body).into_owned().collect())
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }

    pub fn required(&self, key: &str) -> Result<&str, ApiError> {
        self.get(key).ok_or_else(|| ApiError::missing(key))
    }

    pub fn has_prefix(&self, prefix: &str) -> bool {
        self.0.keys().any(|key| key.starts_with(prefix))
    }

    pub fn int(&self, key: &str) -> Result<Option<i64>, ApiError> {
        self.get(key)
            .map(|value| {
                value.parse().map_err(|_| {
                    ApiError::invalid_value(format!("Invalid value '{value}' for {key}"))
                })
            })
            .transpose()
    }

    pub fn bool(&self, key: &str) -> Result<Option<bool>, ApiError> {
        self.get(key)
            .map(|value| match value.to_ascii_lowercase().as_str() {
                "true" => Ok(true),
                "false" => Ok(false),
                _ => Err(ApiError::invalid_value(format!(
                    "Invalid value '{value}' for {key}"
                ))),
            })
            .transpose()
    }

    /// The values of `prefix.1`, `prefix.2`… in index order.
    pub fn list(&self, prefix: &str) -> Vec<String> {
        self.indices(prefix)
            .into_iter()
            .filter_map(|n| self.get(&format!("{prefix}.{n}")).map(str::to_owned))
            .collect()
    }

    pub fn filters(&self) -> Vec<Filter> {
        self.indices("Filter")
            .into_iter()
            .filter_map(|n| {
                Some(Filter {
                    name: self.get(&format!("Filter.{n}.Name"))?.to_owned(),
                    values: self.list(&format!("Filter.{n}.Value")),
                })
            })
            .collect()
    }

    /// `prefix.N.Key` / `prefix.N.Value` pairs; the value is absent when not sent.
    pub fn tags(&self, prefix: &str) -> Vec<(String, Option<String>)> {
        self.indices(prefix)
            .into_iter()
            .filter_map(|n| {
                let key = self.get(&format!("{prefix}.{n}.Key"))?;
                let value = self.get(&format!("{prefix}.{n}.Value"));
                Some((key.to_owned(), value.map(str::to_owned)))
            })
            .collect()
    }

    /// The tags of the `TagSpecification`s, which must all name `resource_type`.
    pub fn tag_specs(&self, resource_type: &str) -> Result<Tags, ApiError> {
        let mut tags = Tags::new();
        for n in self.indices("TagSpecification") {
            let spec = format!("TagSpecification.{n}");
            let kind = self.get(&format!("{spec}.ResourceType")).unwrap_or("");
            if kind != resource_type {
                return Err(ApiError::invalid_value(format!(
                    "'{kind}' is not a valid taggable resource type for this operation."
                )));
            }
            for (key, value) in self.tags(&format!("{spec}.Tag")) {
                tags.insert(key, value.unwrap_or_default());
            }
        }
        Ok(tags)
    }

    /// Every parameter but the ones named, in a canonical order: what makes two requests
    /// "the same" for ClientToken idempotency.
    pub fn fingerprint(&self, except: &[&str]) -> String {
        let sorted: BTreeMap<_, _> = self
            .0
            .iter()
            .filter(|(key, _)| !except.contains(&key.as_str()))
            .collect();
        format!("{sorted:?}")
    }

    fn indices(&self, prefix: &str) -> BTreeSet<u32> {
        self.0
            .keys()
            .filter_map(|key| key.strip_prefix(prefix)?.strip_prefix('.'))
            .filter_map(|rest| rest.split('.').next()?.parse().ok())
            .collect()
    }
}

pub struct Filter {
    pub name: String,
    pub values: Vec<String>,
}

/// How a filter name reads its values from a resource.
pub type Field<T> = fn(&T) -> Vec<String>;

/// A resource that Describe filters apply to: `tag:<key>` and `tag-key` for all, the rest
/// by name.
pub trait Filterable: Sized {
    fn tags(&self) -> &Tags;
    fn field(name: &str) -> Option<Field<Self>>;
}

/// The resources named by `ids` (all must exist and be visible) or else all visible ones,
/// narrowed by the filters, in ID order.
pub fn select<'a, T: Filterable>(
    all: &'a BTreeMap<String, T>,
    ids: &[String],
    filters: &[Filter],
    visible: impl Fn(&T) -> bool,
    missing: impl Fn(&str) -> ApiError,
) -> Result<Vec<&'a T>, ApiError> {
    for filter in filters {
        let generic = filter.name.starts_with("tag:") || filter.name == "tag-key";
        if !generic && T::field(&filter.name).is_none() {
            return Err(ApiError::invalid_value(format!(
                "The filter '{}' is invalid",
                filter.name
            )));
        }
    }
    let chosen: Vec<&T> = if ids.is_empty() {
        all.values().filter(|item| visible(item)).collect()
    } else {
        let ids: BTreeSet<&String> = ids.iter().collect();
        ids.into_iter()
            .map(|id| {
                all.get(id)
                    .filter(|item| visible(item))
                    .ok_or_else(|| missing(id))
            })
            .collect::<Result<_, _>>()?
    };
    Ok(chosen
        .into_iter()
        .filter(|item| filters.iter().all(|filter| matches(*item, filter)))
        .collect())
}

fn matches<T: Filterable>(item: &T, filter: &Filter) -> bool {
    let values: Vec<String> = if let Some(key) = filter.name.strip_prefix("tag:") {
        item.tags().get(key).cloned().into_iter().collect()
    } else if filter.name == "tag-key" {
        item.tags().keys().cloned().collect()
    } else {
        T::field(&filter.name).map_or_else(Vec::new, |field| field(item))
    };
    filter
        .values
        .iter()
        .any(|pattern| values.iter().any(|value| glob(pattern, value)))
}

/// EC2's filter wildcards: `*` any run of characters, `?` exactly one.
fn glob(pattern: &str, text: &str) -> bool {
    let (pattern, text): (Vec<char>, Vec<char>) =
        (pattern.chars().collect(), text.chars().collect());
    let (mut p, mut t) = (0, 0);
    let mut backtrack: Option<(usize, usize)> = None;
    while t < text.len() {
        if p < pattern.len() && (pattern[p] == '?' || pattern[p] == text[t]) {
            p += 1;
            t += 1;
        } else if p < pattern.len() && pattern[p] == '*' {
            backtrack = Some((p, t));
            p += 1;
        } else if let Some((star, matched)) = backtrack {
            p = star + 1;
            t = matched + 1;
            backtrack = Some((star, matched + 1));
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|&c| c == '*')
}

/// `MaxResults` and `NextToken`. The token is the ID the next page starts at.
pub struct Paging {
    max: Option<usize>,
    token: Option<String>,
}

impl Paging {
    /// `ids_parameter` is how EC2 names the ID list in its error when both are sent.
    pub fn read(
        params: &Params,
        range: (usize, usize),
        ids_given: bool,
        ids_parameter: &str,
    ) -> Result<Paging, ApiError> {
        let max = params.int("MaxResults")?;
        if let Some(max) = max {
            if ids_given {
                return Err(ApiError::combination(format!(
                    "The parameter {ids_parameter} cannot be used with the parameter MaxResults"
                )));
            }
            if !usize::try_from(max).is_ok_and(|max| (range.0..=range.1).contains(&max)) {
                return Err(ApiError::invalid_value(format!(
                    "Value ( {max} ) for parameter maxResults is invalid. Expecting a value between {} and {}.",
                    range.0, range.1
                )));
            }
        }
        Ok(Paging {
            max: max.and_then(|max| usize::try_from(max).ok()),
            token: params.get("NextToken").map(str::to_owned),
        })
    }

    pub fn page<T>(&self, items: Vec<T>, id: impl Fn(&T) -> &str) -> (Vec<T>, Option<String>) {
        let mut rest: Vec<T> = items
            .into_iter()
            .skip_while(|item| self.token.as_deref().is_some_and(|token| id(item) < token))
            .collect();
        let Some(max) = self.max.filter(|max| rest.len() > *max) else {
            return (rest, None);
        };
        let next = id(&rest[max]).to_owned();
        rest.truncate(max);
        (rest, Some(next))
    }
}
