//! Index operations: make a multi-platform index of images ([`create`]), add images to
//! one ([`append`]; an image of a platform already listed replaces it), keep some
//! platforms ([`filter`]), and list its entries ([`list`]). Results are lazy indexes:
//! writing one copies or mounts what exists and reads nothing else.

use hoist_image::mutate::index;
use hoist_image::pipeline::Encoding;
use hoist_image::{Child, Descriptor, Platform};

use crate::context::Context;
use crate::error::{Context as _, Error, Result};
use crate::location::Location;
use crate::open::{Open, open_image, open_index};
use crate::write::{Report, write};

fn images(list: &[Location], ctx: &Context) -> Result<Vec<Child>> {
    list.iter()
        .map(|l| open_image(l, &Open::encoding(Encoding::gzip()), ctx).map(Child::Image))
        .collect()
}

/// Make an index of `images` (each of one platform); write it to `dst`.
pub fn create(images_at: &[Location], dst: &Location, ctx: &Context) -> Result<Report> {
    ctx.blocking(|| create_here(images_at, dst, ctx))
}

fn create_here(images_at: &[Location], dst: &Location, ctx: &Context) -> Result<Report> {
    let idx = index::create(images(images_at, ctx)?)?;
    write(dst, Child::Index(idx), ctx)
}

/// Add `images` to the index at `src`; write the result to `dst`.
pub fn append(
    src: &Location,
    images_at: &[Location],
    dst: &Location,
    ctx: &Context,
) -> Result<Report> {
    ctx.blocking(|| append_here(src, images_at, dst, ctx))
}

fn append_here(
    src: &Location,
    images_at: &[Location],
    dst: &Location,
    ctx: &Context,
) -> Result<Report> {
    let base = open_index(src, &Open::encoding(Encoding::gzip()), ctx)?;
    let idx = index::append_to(base, images(images_at, ctx)?)?;
    write(dst, Child::Index(idx), ctx)
}

/// Keep only the images of `platforms` of the index at `src`; write the result to `dst`.
pub fn filter(
    src: &Location,
    platforms: &[Platform],
    dst: &Location,
    ctx: &Context,
) -> Result<Report> {
    ctx.blocking(|| filter_here(src, platforms, dst, ctx))
}

fn filter_here(
    src: &Location,
    platforms: &[Platform],
    dst: &Location,
    ctx: &Context,
) -> Result<Report> {
    let base = open_index(src, &Open::encoding(Encoding::gzip()), ctx)?;
    let idx = index::filter(base, platforms).with_context(|| format!("filtering {src}"))?;
    write(dst, Child::Index(idx), ctx)
}

/// The entries of the index at `src`: digest, platform, media type, size, annotations.
pub fn list(src: &Location, ctx: &Context) -> Result<Vec<Descriptor>> {
    let idx = open_index(src, &Open::default(), ctx)?;
    let m = idx.manifest()?;
    Ok(m.as_index()
        .ok_or_else(|| Error::invalid(format!("{src}: not an index")))?
        .manifests
        .clone())
}
