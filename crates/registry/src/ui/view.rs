//! The web page's HTML: maud templates (every interpolation escaped), one stylesheet and
//! one small script inlined, both allowed by hash in the Content-Security-Policy.
//!
//! Accessibility: a skip link, landmarks (`header`, `nav`, `main`), tables with captions
//! and header scopes, `time` elements, visible focus, text contrast of at least 7:1 in
//! both colour schemes, and a status region announcing copies. Narrow screens drop the
//! secondary columns and wrap digests.

use std::sync::LazyLock;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::http::StatusCode;
use base64::Engine as _;
use hoist_image::{ConfigFile, Descriptor, Parsed};
use maud::{DOCTYPE, Markup, PreEscaped, html};
use sha2::Digest as _;

use super::{Detail, RepoRow, TagRow};
use crate::names::RepoName;

const STYLE: &str = include_str!("style.css");
const SCRIPT: &str = include_str!("copy.js");

/// The page's Content-Security-Policy: nothing but its own inline style and script.
pub(crate) fn content_security_policy() -> String {
    static CSP: LazyLock<String> = LazyLock::new(|| {
        let hash = |s: &str| {
            base64::engine::general_purpose::STANDARD.encode(sha2::Sha256::digest(s.as_bytes()))
        };
        format!(
            "default-src 'none'; style-src 'sha256-{}'; script-src 'sha256-{}'; img-src data:; \
             base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
            hash(STYLE),
            hash(SCRIPT)
        )
    });
    CSP.clone()
}

fn layout(title: &str, crumbs: Markup, content: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                meta name="color-scheme" content="light dark";
                title { (title) " · hoist registry" }
                link rel="icon" href="data:,";
                style { (PreEscaped(STYLE)) }
            }
            body {
                a.skip href="#main" { "Skip to content" }
                header {
                    nav aria-label="Breadcrumb" {
                        ol { li { a href="/" { "hoist registry" } } (crumbs) }
                    }
                }
                main #main { (content) }
                footer { p { "Served by hoist " (env!("CARGO_PKG_VERSION")) ". API at " code { "/v2/" } "." } }
                p #copy-status .visually-hidden role="status" aria-live="polite" {}
                script { (PreEscaped(SCRIPT)) }
            }
        }
    }
}

/// Breadcrumbs for a repository: each component links to nothing but the last, which links
/// to the repository.
fn repo_crumbs(repo: &RepoName, current: Option<&str>) -> Markup {
    html! {
        @if let Some(c) = current {
            li { a href=(repo_href(repo)) { (repo.as_str()) } }
            li aria-current="page" { (c) }
        } @else {
            li aria-current="page" { (repo.as_str()) }
        }
    }
}

fn repo_href(repo: &RepoName) -> String {
    format!("/ui/r/{repo}")
}

fn manifest_href(repo: &RepoName, digest: &hoist_image::Digest) -> String {
    format!("/ui/r/{repo}@{digest}")
}

/// A pull reference with a copy button (the button appears once the script runs).
fn pull(reference: &str) -> Markup {
    html! {
        span.pull {
            code.ref { (reference) }
            button.copy type="button" hidden data-copy=(reference) aria-label={ "Copy " (reference) } { "Copy" }
        }
    }
}

/// The list of repositories.
pub(crate) fn home(host: &str, rows: &[RepoRow], next: Option<&str>) -> Markup {
    let content = html! {
        h1 { "Repositories" }
        @if rows.is_empty() {
            p { "No repositories yet. Push one: " code { "hoist push IMAGE " (host) "/NAME:TAG" } }
        } @else {
            div.scroll role="region" aria-label="Repositories" tabindex="0" {
                table {
                    caption.visually-hidden { "Repositories, their tag counts and sizes" }
                    thead { tr {
                        th scope="col" { "Repository" }
                        th scope="col" .num { "Tags" }
                        th scope="col" .num { "Size" }
                        th scope="col" .wide { "Newest image" }
                    } }
                    tbody {
                        @for r in rows {
                            tr {
                                th scope="row" { a href={ "/ui/r/" (r.name) } { (r.name) } }
                                td.num { (r.tags) }
                                td.num { (size(r.size)) }
                                td.wide { (age(r.newest.as_deref())) }
                            }
                        }
                    }
                }
            }
            @if let Some(n) = next {
                p { a href={ "/?last=" (encode(n)) } rel="next" { "More repositories →" } }
            }
        }
    };
    layout("Repositories", html! {}, content)
}

/// A repository's tags.
pub(crate) fn repo(host: &str, repo: &RepoName, rows: &[TagRow]) -> Markup {
    let content = html! {
        h1 { (repo.as_str()) }
        @if rows.is_empty() {
            p { "No tags." }
        } @else {
            div.scroll role="region" aria-label="Tags" tabindex="0" {
                table {
                    caption.visually-hidden { "Tags of " (repo.as_str()) }
                    thead { tr {
                        th scope="col" { "Tag" }
                        th scope="col" .wide { "Digest" }
                        th scope="col" { "Platforms" }
                        th scope="col" .num { "Size" }
                        th scope="col" { "Created" }
                        th scope="col" .wide { "Pull" }
                    } }
                    tbody {
                        @for r in rows {
                            tr {
                                th scope="row" { a href={ "/ui/r/" (repo.as_str()) ":" (r.tag) } { (r.tag) } }
                                td.wide { a href=(manifest_href(repo, &r.digest)) title=(r.digest.to_string()) { code { (short(&r.digest)) } } }
                                td { (platforms(&r.summary.platforms, r.summary.artifact_type.as_deref())) }
                                td.num { (size(r.summary.size)) }
                                td { (age(r.summary.created.as_deref())) }
                                td.wide { (pull(&format!("{host}/{repo}:{}", r.tag))) }
                            }
                        }
                    }
                }
            }
        }
    };
    layout(repo.as_str(), repo_crumbs(repo, None), content)
}

/// An image or index.
pub(crate) fn manifest(host: &str, repo: &RepoName, tag: Option<&str>, d: &Detail) -> Markup {
    let title = match tag {
        Some(t) => format!("{repo}:{t}"),
        None => format!("{repo}@{}", short(&d.digest)),
    };
    let s = &d.summary;
    let content = html! {
        h1 { (title) }
        section aria-labelledby="pull-h" {
            h2 #pull-h { "Pull" }
            ul.pulls {
                @if let Some(t) = tag { li { (pull(&format!("{host}/{repo}:{t}"))) } }
                li { (pull(&format!("{host}/{repo}@{}", d.digest))) }
            }
        }
        section aria-labelledby="facts-h" {
            h2 #facts-h { "Summary" }
            dl.facts {
                dt { "Digest" } dd { code.digest { (d.digest) } }
                dt { "Media type" } dd { code { (s.media_type) } }
                @if let Some(a) = &s.artifact_type { dt { "Artifact type" } dd { code { (a) } } }
                dt { "Platforms" } dd { (platforms(&s.platforms, None)) }
                dt { "Size" } dd { (size(s.size)) " (" (s.blobs.len()) " blobs, each counted once)" }
                @if let Some(c) = &s.created { dt { "Created" } dd { (age(Some(c))) } }
            }
        }
        @match &d.parsed {
            Parsed::Image(im) => {
                section aria-labelledby="layers-h" {
                    h2 #layers-h { "Layers (" (im.layers.len()) ")" }
                    div.scroll role="region" aria-label="Layers" tabindex="0" {
                        table.layers {
                            caption.visually-hidden { "Layers, base first" }
                            thead { tr {
                                th scope="col" .num { "#" }
                                th scope="col" { "Digest" }
                                th scope="col" .num { "Size" }
                                th scope="col" .wide { "Media type" }
                            } }
                            tbody {
                                @for (i, l) in im.layers.iter().enumerate() {
                                    tr {
                                        td.num { (i + 1) }
                                        td { code.digest { (l.digest) } }
                                        td.num { (size(l.size)) }
                                        td.wide { code { (l.media_type.as_str()) } }
                                    }
                                }
                            }
                        }
                    }
                }
                section aria-labelledby="config-h" {
                    h2 #config-h { "Config" }
                    p { "Blob " code.digest { (im.config.digest) } " (" (size(im.config.size)) ", " code { (im.config.media_type.as_str()) } ")" }
                    @if let Some(c) = &d.config { (config(c)) }
                }
                (annotations(&im.annotations))
            }
            Parsed::Index(ix) => {
                section aria-labelledby="children-h" {
                    h2 #children-h { "Manifests (" (ix.manifests.len()) ")" }
                    div.scroll role="region" aria-label="Manifests" tabindex="0" {
                        table {
                            caption.visually-hidden { "The index's manifests" }
                            thead { tr {
                                th scope="col" { "Platform" }
                                th scope="col" { "Digest" }
                                th scope="col" .num { "Size" }
                                th scope="col" .wide { "Media type" }
                            } }
                            tbody {
                                @for (c, present) in &d.children {
                                    tr {
                                        th scope="row" { (c.platform.as_ref().map_or("—".to_string(), |p| p.to_string())) }
                                        td {
                                            @if *present {
                                                a href=(manifest_href(repo, &c.digest)) { code.digest { (c.digest) } }
                                            } @else {
                                                code.digest { (c.digest) } " (not in this repository)"
                                            }
                                        }
                                        td.num { (size(c.size)) }
                                        td.wide { code { (c.media_type.as_str()) } }
                                    }
                                }
                            }
                        }
                    }
                }
                (annotations(&ix.annotations))
            }
        }
        section aria-labelledby="referrers-h" {
            h2 #referrers-h { "Referrers (" (d.referrers.len()) ")" }
            @if d.referrers.is_empty() {
                p { "Nothing refers to this manifest (signatures, SBOMs and attestations would be listed here)." }
            } @else {
                (referrers(repo, &d.referrers))
            }
        }
    };
    let current = tag.map_or_else(|| short(&d.digest), str::to_string);
    layout(&title, repo_crumbs(repo, Some(&current)), content)
}

fn referrers(repo: &RepoName, list: &[Descriptor]) -> Markup {
    html! {
        div.scroll role="region" aria-label="Referrers" tabindex="0" {
            table {
                caption.visually-hidden { "Manifests whose subject is this one" }
                thead { tr {
                    th scope="col" { "Artifact type" }
                    th scope="col" { "Digest" }
                    th scope="col" .num { "Size" }
                } }
                tbody {
                    @for r in list {
                        tr {
                            td { code { (r.artifact_type.as_deref().unwrap_or("—")) } }
                            td { a href=(manifest_href(repo, &r.digest)) { code.digest { (r.digest) } } }
                            td.num { (size(r.size)) }
                        }
                    }
                }
            }
        }
    }
}

fn config(c: &ConfigFile) -> Markup {
    let cfg = c.rest.get("config").and_then(|v| v.as_object());
    let field = |k: &str| cfg.and_then(|o| o.get(k));
    let words = |k: &str| -> Option<String> {
        let v = field(k)?.as_array()?;
        let w: Vec<String> = v
            .iter()
            .map(|x| x.as_str().map_or_else(|| x.to_string(), shell_word))
            .collect();
        (!w.is_empty()).then(|| w.join(" "))
    };
    let text = |k: &str| field(k).and_then(|v| v.as_str()).filter(|s| !s.is_empty());
    let env: Vec<&str> = field("Env")
        .and_then(|v| v.as_array())
        .map(|a| a.iter().filter_map(|x| x.as_str()).collect())
        .unwrap_or_default();
    let ports: Vec<&String> = field("ExposedPorts")
        .and_then(|v| v.as_object())
        .map(|o| o.keys().collect())
        .unwrap_or_default();
    let labels: Vec<(&String, &str)> = field("Labels")
        .and_then(|v| v.as_object())
        .map(|o| {
            o.iter()
                .map(|(k, v)| (k, v.as_str().unwrap_or("")))
                .collect()
        })
        .unwrap_or_default();
    html! {
        dl.facts {
            dt { "Platform" } dd { (c.platform().to_string()) }
            @if let Some(e) = words("Entrypoint") { dt { "Entrypoint" } dd { code { (e) } } }
            @if let Some(e) = words("Cmd") { dt { "Command" } dd { code { (e) } } }
            @if let Some(w) = text("WorkingDir") { dt { "Working directory" } dd { code { (w) } } }
            @if let Some(u) = text("User") { dt { "User" } dd { code { (u) } } }
            @if !ports.is_empty() { dt { "Exposed ports" } dd { @for p in &ports { code { (p) } " " } } }
        }
        @if !env.is_empty() {
            h3 { "Environment" }
            ul.env { @for e in &env { li { code { (e) } } } }
        }
        @if !labels.is_empty() {
            h3 { "Labels" }
            (pairs("Labels", labels.iter().map(|(k, v)| (k.as_str(), *v))))
        }
    }
}

fn annotations(a: &std::collections::BTreeMap<String, String>) -> Markup {
    html! {
        @if !a.is_empty() {
            section aria-labelledby="annotations-h" {
                h2 #annotations-h { "Annotations" }
                (pairs("Annotations", a.iter().map(|(k, v)| (k.as_str(), v.as_str()))))
            }
        }
    }
}

fn pairs<'a>(what: &str, kv: impl Iterator<Item = (&'a str, &'a str)>) -> Markup {
    html! {
        div.scroll role="region" aria-label=(what) tabindex="0" {
            table {
                caption.visually-hidden { (what) }
                thead { tr { th scope="col" { "Key" } th scope="col" { "Value" } } }
                tbody { @for (k, v) in kv { tr { th scope="row" { code { (k) } } td { (v) } } } }
            }
        }
    }
}

/// An error page.
pub(crate) fn error(status: StatusCode, message: &str) -> Markup {
    let reason = status.canonical_reason().unwrap_or("Error");
    layout(
        reason,
        html! { li aria-current="page" { (reason) } },
        html! {
            h1 { (status.as_u16()) " " (reason) }
            p { (message) }
            p { a href="/" { "All repositories" } }
        },
    )
}

fn platforms(list: &[String], artifact: Option<&str>) -> Markup {
    html! {
        @if list.is_empty() {
            @if let Some(a) = artifact { span.muted { "artifact " code { (a) } } } @else { span.muted { "—" } }
        } @else {
            @for (i, p) in list.iter().enumerate() {
                @if i > 0 { ", " }
                span.platform { (p) }
            }
        }
    }
}

/// `sha256:0123456789ab`: the algorithm and 12 hex digits, as `docker images` shows.
fn short(d: &hoist_image::Digest) -> String {
    format!("{}:{}", d.algorithm().as_str(), d.short())
}

fn size(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// A `time` element: "3 days ago", the exact time in its title.
fn age(created: Option<&str>) -> Markup {
    let Some(c) = created else {
        return html! { span.muted { "—" } };
    };
    let text = ago(c).unwrap_or_else(|| c.to_string());
    html! { time datetime=(c) title=(c) { (text) } }
}

/// How long ago an RFC 3339 time was ("5 minutes ago"), or its date when that is over a
/// year ago (reproducible builds say 1970); `None` when it does not parse. Fractions of a
/// second and offsets are ignored: minutes do not matter here.
fn ago(rfc3339: &str) -> Option<String> {
    let base = rfc3339.get(..19)?;
    let t = hoist_image::mutate::parse_time(&format!("{base}Z")).ok()?;
    let now = SystemTime::now().duration_since(UNIX_EPOCH).ok()?.as_secs();
    let d = now.saturating_sub(t);
    let (n, unit) = match d {
        0..60 => return Some("just now".into()),
        60..3600 => (d / 60, "minute"),
        3600..86400 => (d / 3600, "hour"),
        86400..2_678_400 => (d / 86400, "day"),
        2_678_400..31_536_000 => (d / 2_592_000, "month"),
        _ => return Some(base[..10].to_string()),
    };
    Some(format!("{n} {unit}{} ago", if n == 1 { "" } else { "s" }))
}

/// A word of a command line, quoted when it has spaces or quotes.
fn shell_word(s: &str) -> String {
    if !s.is_empty() && !s.contains([' ', '"', '\'', '\t', '\n', '$', '\\']) {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

fn encode(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_words() {
        assert_eq!(size(0), "0 B");
        assert_eq!(size(1023), "1023 B");
        assert_eq!(size(1536), "1.5 KiB");
        assert_eq!(size(3 << 30), "3.0 GiB");
        assert_eq!(shell_word("/bin/sh"), "/bin/sh");
        assert_eq!(shell_word("echo hi"), "'echo hi'");
        assert_eq!(shell_word("it's"), "'it'\\''s'");
        assert_eq!(ago("nonsense"), None);
        assert_eq!(
            ago("2001-02-03T04:05:06.123456789Z").as_deref(),
            Some("2001-02-03")
        );
        assert_eq!(ago("1970-01-01T00:00:00Z").as_deref(), Some("1970-01-01"));
    }

    #[test]
    fn every_interpolation_is_escaped() {
        let page = error(StatusCode::NOT_FOUND, "<script>alert(1)</script>").into_string();
        assert!(!page.contains("<script>alert"));
        assert!(page.contains("&lt;script&gt;"));
    }
}
