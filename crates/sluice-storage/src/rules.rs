//! Static validation rules for profile fields. Each returns a message suitable for a 400
//! response; the caller wraps it in `StorageError::Invalid`.

/// S3 general-purpose bucket naming rules.
/// <https://docs.aws.amazon.com/AmazonS3/latest/userguide/bucketnamingrules.html>
pub fn check_bucket_name(bucket: &str) -> Result<(), String> {
    let fail = |why: &str| Err(format!("invalid bucket name '{bucket}': {why}"));
    if !(3..=63).contains(&bucket.len()) {
        return fail("must be between 3 and 63 characters long");
    }
    if !bucket
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-')
    {
        return fail("may contain only lowercase letters, digits, '.' and '-'");
    }
    let first = bucket.as_bytes()[0];
    let last = bucket.as_bytes()[bucket.len() - 1];
    if !first.is_ascii_alphanumeric() || !last.is_ascii_alphanumeric() {
        return fail("must begin and end with a letter or digit");
    }
    if bucket.contains("..") {
        return fail("must not contain two adjacent periods");
    }
    if looks_like_ipv4(bucket) {
        return fail("must not be formatted as an IP address");
    }
    if bucket.starts_with("xn--") {
        return fail("must not start with 'xn--'");
    }
    if bucket.ends_with("-s3alias") || bucket.ends_with("--ol-s3") {
        return fail("must not end with '-s3alias' or '--ol-s3'");
    }
    Ok(())
}

fn looks_like_ipv4(s: &str) -> bool {
    let parts: Vec<&str> = s.split('.').collect();
    parts.len() == 4
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.len() <= 3 && p.bytes().all(|b| b.is_ascii_digit()))
}

/// Normalizes a key prefix: leading and trailing '/' are dropped; empty, '.' and '..'
/// segments are rejected rather than collapsed, because collapsing would silently change
/// which objects the warehouse owns. `None` means "bucket root".
pub fn normalize_key_prefix(raw: &str) -> Result<Option<String>, String> {
    let trimmed = raw.trim_matches('/');
    if trimmed.is_empty() {
        return Ok(None);
    }
    if trimmed.len() > 896 {
        // S3 keys are at most 1024 bytes; leave room for namespace/table/file names.
        return Err("key-prefix must be at most 896 bytes".into());
    }
    check_segments(trimmed).map_err(|e| format!("invalid key-prefix '{raw}': {e}"))?;
    Ok(Some(trimmed.to_string()))
}

/// Checks '/'-separated segments: no empty, '.', '..' segments and no control characters.
pub(crate) fn check_segments(s: &str) -> Result<(), String> {
    if s.chars().any(|c| c.is_control()) {
        return Err("must not contain control characters".into());
    }
    for seg in s.split('/') {
        match seg {
            "" => return Err("must not contain empty path segments ('//')".into()),
            "." | ".." => return Err("must not contain '.' or '..' segments".into()),
            _ => {}
        }
    }
    Ok(())
}

/// Longest table location accepted from a client, in bytes. Sluice writes
/// `<location>/metadata/<version>-<uuid>.metadata.json` itself; with at most 960 bytes that key
/// stays below S3's 1024-byte key limit, and a file path below every platform's path limit.
pub const MAX_TABLE_LOCATION_BYTES: usize = 960;
/// Longest '/'-separated component of a table location: the common file-name limit
/// (NAME_MAX), so a file warehouse never answers "File name too long".
pub const MAX_LOCATION_COMPONENT_BYTES: usize = 255;

/// Characters a table location may use below the warehouse root: the character set of
/// `file` warehouse roots. Nothing a URI parser, a shell, or an object store's URL encoding
/// would decode or split on (`%`, `?`, `#`, `\`, spaces), so the directory a client names is
/// the directory every later reader resolves.
pub fn is_location_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "-_.~+=,@".contains(c)
}

/// Checks the part of a table location below the warehouse root (`rel`, '/'-separated,
/// no leading or trailing '/') and the whole location's length.
pub fn check_table_location(location: &str, rel: &str) -> Result<(), String> {
    if location.len() > MAX_TABLE_LOCATION_BYTES {
        return Err(format!(
            "is {} bytes long; table and view locations may be at most {MAX_TABLE_LOCATION_BYTES} bytes",
            location.len()
        ));
    }
    check_segments(rel)?;
    for seg in rel.split('/') {
        if seg.len() > MAX_LOCATION_COMPONENT_BYTES {
            return Err(format!(
                "has a {}-byte component; components may be at most {MAX_LOCATION_COMPONENT_BYTES} bytes",
                seg.len()
            ));
        }
        if let Some(c) = seg.chars().find(|c| !is_location_char(*c)) {
            return Err(format!(
                "contains {c:?}; below the warehouse root only ASCII letters, digits and \
                 '/-_.~+=,@' are allowed"
            ));
        }
    }
    Ok(())
}

/// `arn:<partition>:iam::<12-digit account>:role/<path/>name`.
pub fn check_role_arn(field: &str, arn: &str) -> Result<(), String> {
    let fail = || {
        Err(format!(
            "{field} '{arn}' is not an IAM role ARN (expected arn:aws:iam::<12-digit account id>:role/<name>)"
        ))
    };
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    let [prefix, partition, service, region, account, resource] = parts.as_slice() else {
        return fail();
    };
    let partition_ok = partition.starts_with("aws")
        && partition
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    let account_ok = account.len() == 12 && account.bytes().all(|b| b.is_ascii_digit());
    let role_ok = resource
        .strip_prefix("role/")
        .map(|rest| {
            !rest.is_empty()
                && !rest.ends_with('/')
                && rest.len() <= 512
                && rest
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"+=,.@_-/".contains(&b))
        })
        .unwrap_or(false);
    if *prefix == "arn"
        && partition_ok
        && *service == "iam"
        && region.is_empty()
        && account_ok
        && role_ok
    {
        Ok(())
    } else {
        fail()
    }
}

/// `arn:<partition>:kms:<region>:<12-digit account>:key/<id>` or `…:alias/<name>`.
pub fn check_kms_key_arn(arn: &str) -> Result<(), String> {
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    let ok = match parts.as_slice() {
        [prefix, partition, service, region, account, resource] => {
            *prefix == "arn"
                && partition.starts_with("aws")
                && *service == "kms"
                && !region.is_empty()
                && account.len() == 12
                && account.bytes().all(|b| b.is_ascii_digit())
                && (resource.strip_prefix("key/").is_some_and(|r| !r.is_empty())
                    || resource
                        .strip_prefix("alias/")
                        .is_some_and(|r| !r.is_empty()))
                && !arn.chars().any(|c| c.is_whitespace() || c.is_control())
        }
        _ => false,
    };
    if ok {
        Ok(())
    } else {
        Err(format!(
            "aws-kms-key-arn '{arn}' is not a KMS key ARN (expected arn:aws:kms:<region>:<account>:key/<id>)"
        ))
    }
}

/// Regions are free-form for S3-compatible stores ("garage", "auto"), so only the
/// character set is restricted — enough to keep them out of URLs and headers unescaped.
pub fn check_region(region: &str) -> Result<(), String> {
    if region.is_empty() || region.len() > 64 {
        return Err("region must be between 1 and 64 characters".into());
    }
    if !region
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err(format!(
            "region '{region}' may contain only letters, digits, '-' and '_'"
        ));
    }
    Ok(())
}

/// An endpoint is an http(s) base URL. Userinfo is refused because it would put a
/// credential into a field that is echoed back to clients in table configs.
pub fn check_endpoint(endpoint: &str) -> Result<url::Url, String> {
    let url = url::Url::parse(endpoint)
        .map_err(|e| format!("endpoint '{endpoint}' is not a valid URL: {e}"))?;
    if url.scheme() != "http" && url.scheme() != "https" {
        return Err(format!("endpoint '{endpoint}' must use http or https"));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(format!("endpoint '{endpoint}' has no host"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("endpoint must not contain user credentials".into());
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(format!(
            "endpoint '{endpoint}' must not have a query or fragment"
        ));
    }
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_names() {
        let cases: &[(&str, bool)] = &[
            ("abc", true),
            ("my-bucket", true),
            ("my.bucket.name", true),
            ("a1b2c3", true),
            ("123", true),
            (&"a".repeat(63), true),
            ("ab", false),
            (&"a".repeat(64), false),
            ("", false),
            ("MyBucket", false),
            ("my_bucket", false),
            ("my bucket", false),
            ("-bucket", false),
            ("bucket-", false),
            (".bucket", false),
            ("bucket.", false),
            ("my..bucket", false),
            ("192.168.5.4", false),
            ("1.2.3.4", false),
            ("1.2.3", true),
            ("1.2.3.4.5", true),
            ("xn--bucket", false),
            ("bucket-s3alias", false),
            ("bucket--ol-s3", false),
            ("bucket-ol-s3", true),
            ("bücket", false),
        ];
        for (name, ok) in cases {
            assert_eq!(check_bucket_name(name).is_ok(), *ok, "bucket {name:?}");
        }
    }

    #[test]
    fn key_prefixes() {
        assert_eq!(normalize_key_prefix("").unwrap(), None);
        assert_eq!(normalize_key_prefix("/").unwrap(), None);
        assert_eq!(normalize_key_prefix("//").unwrap(), None);
        assert_eq!(normalize_key_prefix("a").unwrap().as_deref(), Some("a"));
        assert_eq!(
            normalize_key_prefix("/a/b/").unwrap().as_deref(),
            Some("a/b")
        );
        assert_eq!(
            normalize_key_prefix("a/b c/d").unwrap().as_deref(),
            Some("a/b c/d")
        );
        assert_eq!(
            normalize_key_prefix("..a/b.").unwrap().as_deref(),
            Some("..a/b.")
        );
        for bad in [
            "a//b",
            "a/./b",
            "a/../b",
            "..",
            ".",
            "/../x",
            "a/\nb",
            &"x".repeat(897),
        ] {
            assert!(normalize_key_prefix(bad).is_err(), "prefix {bad:?}");
        }
    }

    #[test]
    fn role_arns() {
        for good in [
            "arn:aws:iam::123456789012:role/my-role",
            "arn:aws:iam::123456789012:role/path/to/my-role",
            "arn:aws-cn:iam::123456789012:role/r",
            "arn:aws-us-gov:iam::123456789012:role/R_1+=,.@-",
        ] {
            assert!(check_role_arn("sts-role-arn", good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "role/x",
            "arn:aws:iam::12345678901:role/x",
            "arn:aws:iam::1234567890123:role/x",
            "arn:aws:iam::12345678901a:role/x",
            "arn:aws:iam:us-east-1:123456789012:role/x",
            "arn:aws:s3::123456789012:role/x",
            "arn:aws:iam::123456789012:user/x",
            "arn:aws:iam::123456789012:role/",
            "arn:aws:iam::123456789012:role/x/",
            "arn:gcp:iam::123456789012:role/x",
            "arn:aws:iam::123456789012:role/a b",
            "xarn:aws:iam::123456789012:role/x",
        ] {
            assert!(check_role_arn("sts-role-arn", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn kms_arns() {
        assert!(check_kms_key_arn(
            "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"
        )
        .is_ok());
        assert!(check_kms_key_arn("arn:aws:kms:eu-west-1:123456789012:alias/my").is_ok());
        assert!(check_kms_key_arn("1234abcd").is_err());
        assert!(check_kms_key_arn("arn:aws:kms::123456789012:key/x").is_err());
        assert!(check_kms_key_arn("arn:aws:iam::123456789012:role/x").is_err());
    }

    #[test]
    fn regions_and_endpoints() {
        assert!(check_region("us-east-1").is_ok());
        assert!(check_region("garage").is_ok());
        assert!(check_region("").is_err());
        assert!(check_region("us east").is_err());
        assert!(check_endpoint("http://127.0.0.1:9000").is_ok());
        assert!(check_endpoint("https://s3.example.com/").is_ok());
        assert!(check_endpoint("ftp://x").is_err());
        assert!(check_endpoint("not a url").is_err());
        assert!(check_endpoint("http://user:pw@host").is_err());
        assert!(check_endpoint("http://host/?a=b").is_err());
    }
}
