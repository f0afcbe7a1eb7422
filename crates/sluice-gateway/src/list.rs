//! ListObjects (V1 and V2): the store lists below the prefix, the service layer drops
//! what the caller may not read, and then delimiter grouping and paging run on what is
//! left, so neither a key nor a common prefix of a hidden table is ever shown.

use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use s3s::dto::*;
use s3s::{s3_error, S3Result};
use sluice_service::gateway_creds::GatewayCaller;
use sluice_storage::ObjectInfo;

use crate::error::{storage_error, to_s3_error};
use crate::ops::{etag, timestamp};
use crate::Gateway;

const MAX_KEYS: i32 = 1000;

/// What `encoding-type=url` leaves as is (S3 keeps '/' and the unreserved characters).
const URL_ENCODE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~')
    .remove(b'/');

struct Page {
    contents: Vec<ObjectInfo>,
    prefixes: Vec<String>,
    /// The last key or common prefix of a truncated page.
    next: Option<String>,
}

fn page(
    objects: Vec<ObjectInfo>,
    prefix: &str,
    delimiter: Option<&str>,
    after: Option<&str>,
    max_keys: usize,
) -> Page {
    let mut contents = Vec::new();
    let mut prefixes: Vec<String> = Vec::new();
    let mut last: Option<String> = None;
    let mut truncated = false;
    for o in objects {
        if let Some(a) = after {
            // A marker that is a common prefix skips everything under it.
            if o.key.as_str() <= a
                || (delimiter.is_some_and(|d| a.ends_with(d)) && o.key.starts_with(a))
            {
                continue;
            }
        }
        let group = delimiter.filter(|d| !d.is_empty()).and_then(|d| {
            o.key[prefix.len()..]
                .find(d)
                .map(|i| o.key[..prefix.len() + i + d.len()].to_string())
        });
        if let Some(g) = &group {
            if prefixes.last() == Some(g) {
                continue;
            }
        }
        if contents.len() + prefixes.len() >= max_keys {
            truncated = true;
            break;
        }
        match group {
            Some(g) => {
                last = Some(g.clone());
                prefixes.push(g);
            }
            None => {
                last = Some(o.key.clone());
                contents.push(o);
            }
        }
    }
    Page {
        contents,
        prefixes,
        next: if truncated { last } else { None },
    }
}

fn encoder(url: bool) -> impl Fn(String) -> String {
    move |s: String| {
        if url {
            utf8_percent_encode(&s, URL_ENCODE).to_string()
        } else {
            s
        }
    }
}

fn wants_url(e: &Option<EncodingType>) -> S3Result<bool> {
    match e {
        None => Ok(false),
        Some(e) if e.as_str() == EncodingType::URL => Ok(true),
        Some(_) => Err(s3_error!(
            InvalidArgument,
            "Invalid Encoding Method specified in Request"
        )),
    }
}

impl Gateway {
    async fn listed(
        &self,
        caller: &GatewayCaller,
        bucket: &str,
        prefix: &str,
        delimiter: Option<&str>,
        after: Option<&str>,
        max_keys: Option<i32>,
    ) -> S3Result<Page> {
        let max_keys = max_keys.unwrap_or(MAX_KEYS);
        if max_keys < 0 {
            return Err(s3_error!(InvalidArgument, "max-keys must not be negative"));
        }
        let b = self.bucket(caller, bucket).await?;
        let objects = b
            .storage()
            .list_objects(prefix)
            .await
            .map_err(storage_error)?;
        let objects = self
            .services
            .gateway_readable(caller, &b, objects)
            .await
            .map_err(to_s3_error)?;
        let mut p = page(
            objects,
            prefix,
            delimiter,
            after,
            max_keys.min(MAX_KEYS) as usize,
        );
        b.storage().resolve_e_tags(&mut p.contents).await;
        Ok(p)
    }

    pub(crate) async fn list_v2(
        &self,
        caller: &GatewayCaller,
        input: ListObjectsV2Input,
    ) -> S3Result<ListObjectsV2Output> {
        let url = wants_url(&input.encoding_type)?;
        let prefix = input.prefix.clone().unwrap_or_default();
        let after = match (&input.continuation_token, &input.start_after) {
            (Some(t), Some(s)) => Some(t.clone().max(s.clone())),
            (Some(t), None) => Some(t.clone()),
            (None, s) => s.clone(),
        };
        let p = self
            .listed(
                caller,
                &input.bucket,
                &prefix,
                input.delimiter.as_deref(),
                after.as_deref(),
                input.max_keys,
            )
            .await?;
        let enc = encoder(url);
        let key_count = (p.contents.len() + p.prefixes.len()) as i32;
        Ok(ListObjectsV2Output {
            name: Some(input.bucket),
            prefix: Some(enc(prefix)),
            delimiter: input.delimiter.map(&enc),
            start_after: input.start_after.map(&enc),
            max_keys: Some(input.max_keys.unwrap_or(MAX_KEYS).min(MAX_KEYS)),
            key_count: Some(key_count),
            continuation_token: input.continuation_token,
            is_truncated: Some(p.next.is_some()),
            next_continuation_token: p.next,
            contents: Some(objects(p.contents, &enc)),
            common_prefixes: Some(common(p.prefixes, &enc)),
            encoding_type: input.encoding_type,
            ..Default::default()
        })
    }

    pub(crate) async fn list_v1(
        &self,
        caller: &GatewayCaller,
        input: ListObjectsInput,
    ) -> S3Result<ListObjectsOutput> {
        let url = wants_url(&input.encoding_type)?;
        let prefix = input.prefix.clone().unwrap_or_default();
        let p = self
            .listed(
                caller,
                &input.bucket,
                &prefix,
                input.delimiter.as_deref(),
                input.marker.as_deref().filter(|m| !m.is_empty()),
                input.max_keys,
            )
            .await?;
        let enc = encoder(url);
        // NextMarker is only returned with a delimiter; without one clients use the last key.
        let next_marker = if input.delimiter.is_some() {
            p.next.clone().map(&enc)
        } else {
            None
        };
        Ok(ListObjectsOutput {
            name: Some(input.bucket),
            prefix: Some(enc(prefix)),
            delimiter: input.delimiter.map(&enc),
            marker: Some(input.marker.unwrap_or_default()),
            max_keys: Some(input.max_keys.unwrap_or(MAX_KEYS).min(MAX_KEYS)),
            is_truncated: Some(p.next.is_some()),
            next_marker,
            contents: Some(objects(p.contents, &enc)),
            common_prefixes: Some(common(p.prefixes, &enc)),
            encoding_type: input.encoding_type,
            ..Default::default()
        })
    }
}

fn objects(list: Vec<ObjectInfo>, enc: &impl Fn(String) -> String) -> Vec<Object> {
    list.into_iter()
        .map(|o| Object {
            e_tag: etag(&o),
            last_modified: Some(timestamp(o.last_modified)),
            size: Some(o.size as i64),
            storage_class: Some(ObjectStorageClass::from_static(
                ObjectStorageClass::STANDARD,
            )),
            key: Some(enc(o.key)),
            ..Default::default()
        })
        .collect()
}

fn common(list: Vec<String>, enc: &impl Fn(String) -> String) -> Vec<CommonPrefix> {
    list.into_iter()
        .map(|p| CommonPrefix {
            prefix: Some(enc(p)),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn objs(keys: &[&str]) -> Vec<ObjectInfo> {
        keys.iter()
            .map(|k| ObjectInfo {
                key: k.to_string(),
                size: 1,
                last_modified: chrono::Utc::now(),
                e_tag: None,
                attributes: Default::default(),
            })
            .collect()
    }

    fn names(p: &Page) -> (Vec<&str>, Vec<&str>, Option<&str>) {
        (
            p.contents.iter().map(|o| o.key.as_str()).collect(),
            p.prefixes.iter().map(String::as_str).collect(),
            p.next.as_deref(),
        )
    }

    #[test]
    fn delimiter_groups_and_pages_count_prefixes_once() {
        let all = ["a", "d/1", "d/2", "e/x/1", "f"];
        let p = page(objs(&all), "", Some("/"), None, 2);
        assert_eq!(names(&p), (vec!["a"], vec!["d/"], Some("d/")));
        let p = page(objs(&all), "", Some("/"), Some("d/"), 2);
        assert_eq!(names(&p), (vec!["f"], vec!["e/"], None));
        let p = page(objs(&all[1..3]), "d/", Some("/"), None, 1000);
        assert_eq!(names(&p), (vec!["d/1", "d/2"], vec![], None));
        let p = page(objs(&all), "", None, Some("d/1"), 1000);
        assert_eq!(names(&p).0, vec!["d/2", "e/x/1", "f"]);
    }
}
