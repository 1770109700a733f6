//! The rules commerce enforces, as OpenAPI schemas. Each is built from the
//! constant or pattern its validator uses (commerce's tests hold patterns
//! and validators equal), so an API document states exactly what is
//! accepted: a request valid by the document is never refused as invalid.

use utoipa::openapi::schema::{
    ArrayBuilder, KnownFormat, ObjectBuilder, Schema, SchemaFormat, SchemaType, Type,
};

use crate::catalog::{
    CURRENCY_PATTERN, IMAGE_PATH_PATTERN, MAX_ATTRIBUTE_KEY_LEN, MAX_ATTRIBUTE_VALUE_LEN,
    MAX_ATTRIBUTES, MAX_CATEGORY_NAME_LEN, MAX_DESCRIPTION_LEN, MAX_IMAGE_PATH_LEN, MAX_IMAGES,
    MAX_PRICE_MINOR, MAX_SKU_LEN, MAX_SLUG_LEN, MAX_TITLE_LEN, SKU_PATTERN, SLUG_PATTERN,
    TEXT_PATTERN,
};

/// A string matching `pattern`, `min` to `max` characters long.
pub fn string(pattern: &str, min: usize, max: usize) -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .pattern(Some(pattern))
        .min_length(Some(min))
        .max_length(Some(max))
}

/// A 64-bit integer from `min` to `max`, both inclusive.
pub fn integer(min: i64, max: i64) -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(Type::Integer)
        .format(Some(SchemaFormat::KnownFormat(KnownFormat::Int64)))
        .minimum(Some(min as f64))
        .maximum(Some(max as f64))
}

/// An unsigned count from `min` to `max` (page sizes, offsets, waits).
pub fn count(min: u64, max: u64) -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(Type::Integer)
        .format(Some(SchemaFormat::KnownFormat(KnownFormat::Int64)))
        .minimum(Some(min as f64))
        .maximum(Some(max as f64))
}

/// The same schema, also allowing `null` (an optional field sent as null).
pub fn nullable(schema: ObjectBuilder, kind: Type) -> Schema {
    schema
        .schema_type(SchemaType::from_iter([kind, Type::Null]))
        .build()
        .into()
}

/// Free text of `min` to `max` characters without control characters
/// (newline and tab allowed).
pub fn text(min: usize, max: usize) -> ObjectBuilder {
    string(TEXT_PATTERN, min, max)
}

pub fn sku() -> Schema {
    string(SKU_PATTERN, 1, MAX_SKU_LEN)
        .description(Some("A-Z, 0-9 and '-', not starting with '-'"))
        .build()
        .into()
}

/// A catalog feed cursor (empty: the feed's start).
pub fn cursor() -> Schema {
    string(crate::feed::Cursor::PATTERN, 0, 24).build().into()
}

pub fn slug() -> Schema {
    string(SLUG_PATTERN, 1, MAX_SLUG_LEN)
        .description(Some("a-z, 0-9 and '-', not starting with '-'"))
        .build()
        .into()
}

pub fn optional_slug() -> Schema {
    nullable(string(SLUG_PATTERN, 1, MAX_SLUG_LEN), Type::String)
}

pub fn title() -> Schema {
    text(1, MAX_TITLE_LEN).build().into()
}

pub fn description() -> Schema {
    text(0, MAX_DESCRIPTION_LEN).build().into()
}

pub fn category_name() -> Schema {
    text(1, MAX_CATEGORY_NAME_LEN).build().into()
}

pub fn amount_minor() -> Schema {
    integer(0, MAX_PRICE_MINOR)
        .description(Some("Minor units (cents)"))
        .build()
        .into()
}

pub fn currency() -> Schema {
    string(CURRENCY_PATTERN, 3, 3)
        .description(Some("ISO 4217, e.g. EUR"))
        .build()
        .into()
}

/// Up to [`MAX_ATTRIBUTES`] text attributes.
pub fn attributes() -> Schema {
    ObjectBuilder::new()
        .schema_type(Type::Object)
        .property_names(Some(text(1, MAX_ATTRIBUTE_KEY_LEN)))
        .additional_properties(Some(text(0, MAX_ATTRIBUTE_VALUE_LEN)))
        .max_properties(Some(MAX_ATTRIBUTES))
        .build()
        .into()
}

/// Units per warehouse: shard names to 0..=[`crate::inventory::MAX_QTY`].
pub fn stock_per_warehouse() -> Schema {
    ObjectBuilder::new()
        .schema_type(Type::Object)
        .property_names(Some(string(
            topology::ShardId::PATTERN,
            1,
            topology::ShardId::MAX_LEN,
        )))
        .additional_properties(Some(integer(0, crate::inventory::MAX_QTY)))
        .build()
        .into()
}

/// Up to [`MAX_IMAGES`] relative asset paths.
pub fn images() -> Schema {
    ArrayBuilder::new()
        .items(string(IMAGE_PATH_PATTERN, 1, MAX_IMAGE_PATH_LEN))
        .max_items(Some(MAX_IMAGES))
        .build()
        .into()
}
