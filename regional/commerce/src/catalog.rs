//! The catalog: categories and products, with one writable home (the
//! catalog shard). Every change bumps the catalog version and appends a
//! change event to the feed in the same transaction.

use std::collections::BTreeMap;

use db::{RangeOption, Transaction};
use serde::{Deserialize, Serialize};

use crate::error::{CommerceError, Result, invalid};
use crate::feed::{Change, State, append_event};
use crate::import::{read_products, write_product};
use crate::{Commerce, get_counter, get_json, keys, set_json};

pub const MAX_SKU_LEN: usize = 32;
pub const MAX_TITLE_LEN: usize = 200;
pub const MAX_DESCRIPTION_LEN: usize = 5_000;
pub const MAX_ATTRIBUTES: usize = 32;
pub const MAX_ATTRIBUTE_KEY_LEN: usize = 64;
pub const MAX_ATTRIBUTE_VALUE_LEN: usize = 256;
pub const MAX_IMAGES: usize = 16;
pub const MAX_IMAGE_PATH_LEN: usize = 256;
pub const MAX_PRICE_MINOR: i64 = 100_000_000_000;
pub const MAX_SLUG_LEN: usize = 64;
pub const MAX_CATEGORY_NAME_LEN: usize = 100;
/// Products one batch upsert writes at most (one transaction).
pub const MAX_BATCH_PRODUCTS: usize = 200;
pub const MAX_LIST_LIMIT: usize = 1_000;

// The rules below as anchored regular expressions (JSON Schema / ECMA-262
// and Rust `regex` alike), for the API document; commerce's tests hold each
// equal to its validator.
/// What [`validate_sku`] accepts.
pub const SKU_PATTERN: &str = "^[A-Z0-9][A-Z0-9-]{0,31}$";
/// What [`validate_slug`] accepts.
pub const SLUG_PATTERN: &str = "^[a-z0-9][a-z0-9-]{0,63}$";
/// What [`validate_currency`] accepts.
pub const CURRENCY_PATTERN: &str = "^[A-Z]{3}$";
/// Free text (titles, names, descriptions, attributes): no control
/// characters but newline and tab. Lengths are counted in characters.
pub const TEXT_PATTERN: &str = "^[^\\x00-\\x08\\x0B-\\x1F\\x7F-\\x9F]*$";
/// An image path: relative, `/`-separated non-empty segments of
/// `A-Z a-z 0-9 - _ .`, none of them `..`; at most [`MAX_IMAGE_PATH_LEN`]
/// bytes (stated as `maxLength`).
pub const IMAGE_PATH_PATTERN: &str = "^(?:[A-Za-z0-9_-][A-Za-z0-9._-]*|\\.|\\.[A-Za-z0-9_-][A-Za-z0-9._-]*|\\.\\.[A-Za-z0-9._-]+)(?:/(?:[A-Za-z0-9_-][A-Za-z0-9._-]*|\\.|\\.[A-Za-z0-9_-][A-Za-z0-9._-]*|\\.\\.[A-Za-z0-9._-]+))*$";

/// An amount in minor units (cents) of an ISO 4217 currency.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Money {
    #[schema(schema_with = crate::openapi::amount_minor)]
    pub amount_minor: i64,
    /// Three uppercase letters, e.g. `EUR`.
    #[schema(schema_with = crate::openapi::currency)]
    pub currency: String,
}

impl Money {
    pub fn validate(&self, field: &'static str) -> Result<()> {
        if !(0..=MAX_PRICE_MINOR).contains(&self.amount_minor) {
            return Err(invalid(
                field,
                format!("amount_minor must be 0..={MAX_PRICE_MINOR}"),
            ));
        }
        validate_currency(&self.currency)
    }
}

pub fn validate_currency(currency: &str) -> Result<()> {
    if currency.len() != 3 || !currency.bytes().all(|b| b.is_ascii_uppercase()) {
        return Err(invalid(
            "currency",
            "must be three uppercase letters (ISO 4217)",
        ));
    }
    Ok(())
}

/// A category of products.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Category {
    #[schema(schema_with = crate::openapi::slug)]
    pub slug: String,
    #[schema(schema_with = crate::openapi::category_name)]
    pub name: String,
    #[serde(default)]
    #[schema(schema_with = crate::openapi::optional_slug)]
    pub parent: Option<String>,
}

/// What an admin sends to create or replace a category.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CategoryInput {
    #[schema(schema_with = crate::openapi::category_name)]
    pub name: String,
    #[serde(default)]
    #[schema(schema_with = crate::openapi::optional_slug)]
    pub parent: Option<String>,
}

/// What an admin sends to create or replace a product.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProductInput {
    #[schema(schema_with = crate::openapi::title)]
    pub title: String,
    #[serde(default)]
    #[schema(schema_with = crate::openapi::description)]
    pub description: String,
    /// A category slug that exists.
    #[schema(schema_with = crate::openapi::slug)]
    pub category: String,
    pub price: Money,
    #[serde(default)]
    #[schema(schema_with = crate::openapi::attributes)]
    pub attributes: BTreeMap<String, String>,
    /// Asset paths, e.g. `products/MRD-000001/1.jpg`.
    #[serde(default)]
    #[schema(schema_with = crate::openapi::images)]
    pub images: Vec<String>,
}

/// A product as stored and served.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Product {
    pub sku: String,
    pub title: String,
    pub description: String,
    pub category: String,
    pub price: Money,
    pub attributes: BTreeMap<String, String>,
    pub images: Vec<String>,
    /// The catalog version of this product's last change.
    pub version: u64,
    pub updated_ms: u64,
}

/// `A-Z`, `0-9` and `-`, starting with a letter or digit, 1 to 32 bytes.
pub fn validate_sku(sku: &str) -> Result<()> {
    let ok = !sku.is_empty()
        && sku.len() <= MAX_SKU_LEN
        && sku
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'-')
        && !sku.starts_with('-');
    if ok {
        Ok(())
    } else {
        Err(invalid(
            "sku",
            format!("must be 1 to {MAX_SKU_LEN} of A-Z, 0-9 and '-', not starting with '-'"),
        ))
    }
}

/// `a-z`, `0-9` and `-`, starting with a letter or digit, 1 to 64 bytes.
pub fn validate_slug(slug: &str) -> Result<()> {
    let ok = !slug.is_empty()
        && slug.len() <= MAX_SLUG_LEN
        && slug
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !slug.starts_with('-');
    if ok {
        Ok(())
    } else {
        Err(invalid(
            "category",
            format!("slug must be 1 to {MAX_SLUG_LEN} of a-z, 0-9 and '-', not starting with '-'"),
        ))
    }
}

pub fn validate_text(field: &'static str, text: &str, min: usize, max: usize) -> Result<()> {
    let len = text.chars().count();
    if len < min || len > max {
        return Err(invalid(field, format!("must be {min} to {max} characters")));
    }
    if text
        .chars()
        .any(|c| c.is_control() && c != '\n' && c != '\t')
    {
        return Err(invalid(field, "must not contain control characters"));
    }
    Ok(())
}

impl ProductInput {
    pub fn validate(&self) -> Result<()> {
        validate_text("title", &self.title, 1, MAX_TITLE_LEN)?;
        validate_text("description", &self.description, 0, MAX_DESCRIPTION_LEN)?;
        validate_slug(&self.category)?;
        self.price.validate("price")?;
        if self.attributes.len() > MAX_ATTRIBUTES {
            return Err(invalid(
                "attributes",
                format!("at most {MAX_ATTRIBUTES} entries"),
            ));
        }
        for (key, value) in &self.attributes {
            validate_text("attributes", key, 1, MAX_ATTRIBUTE_KEY_LEN)?;
            validate_text("attributes", value, 0, MAX_ATTRIBUTE_VALUE_LEN)?;
        }
        if self.images.len() > MAX_IMAGES {
            return Err(invalid("images", format!("at most {MAX_IMAGES} paths")));
        }
        for path in &self.images {
            if !image_path_is_valid(path) {
                return Err(invalid(
                    "images",
                    "each path is relative, at most 256 bytes of A-Z a-z 0-9 - _ . /, no '..'",
                ));
            }
        }
        Ok(())
    }
}

/// A relative asset path: see [`IMAGE_PATH_PATTERN`].
pub fn image_path_is_valid(path: &str) -> bool {
    !path.is_empty()
        && path.len() <= MAX_IMAGE_PATH_LEN
        && !path.starts_with('/')
        && !path.split('/').any(|part| part.is_empty() || part == "..")
        && path
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./".contains(&b))
}

impl CategoryInput {
    pub fn validate(&self) -> Result<()> {
        validate_text("name", &self.name, 1, MAX_CATEGORY_NAME_LEN)?;
        if let Some(parent) = &self.parent {
            validate_slug(parent)?;
        }
        Ok(())
    }
}

/// Bumps and returns the catalog version (serializes catalog writers, which
/// are admin-rate).
pub(crate) async fn bump_version(tx: &Transaction) -> Result<u64> {
    let version = get_counter(tx, &keys::catalog_version(), false).await? + 1;
    tx.set(&keys::catalog_version(), &version.to_le_bytes())?;
    Ok(u64::try_from(version).unwrap_or(0))
}

async fn read_product(db: &db::Database, sku: &str) -> Result<Product> {
    let found = db
        .run(|tx, _| async move { get_json::<Product>(&tx, &keys::product(sku), "product").await })
        .await?;
    found.ok_or_else(|| CommerceError::UnknownSku {
        sku: sku.to_owned(),
    })
}

pub use regional_api::purge::{category_tag, product_tag};

impl Commerce {
    /// Creates or replaces a category.
    pub async fn upsert_category(&self, slug: &str, input: &CategoryInput) -> Result<Category> {
        validate_slug(slug)?;
        input.validate()?;
        let now_ms = self.now_ms();
        let category = Category {
            slug: slug.to_owned(),
            name: input.name.clone(),
            parent: input.parent.clone(),
        };
        self.catalog_db()?
            .run(|tx, _| {
                let category = category.clone();
                async move {
                    if let Some(parent) = &category.parent {
                        if parent == &category.slug {
                            return Err(CommerceError::CategoryCycle {
                                slug: parent.clone(),
                            });
                        }
                        if tx.get(&keys::category(parent)).await?.is_none() {
                            return Err(CommerceError::UnknownCategory {
                                slug: parent.clone(),
                            });
                        }
                    }
                    let version = bump_version(&tx).await?;
                    set_json(&tx, &keys::category(&category.slug), &category)?;
                    append_event(
                        &tx,
                        0,
                        version,
                        now_ms,
                        Change::CategoryUpserted {
                            slug: category.slug.clone(),
                        },
                        vec![category_tag(&category.slug)],
                        &State::Category(category.clone()),
                    )?;
                    Ok(())
                }
            })
            .await?;
        Ok(category)
    }

    /// Deletes a category that holds no products.
    pub async fn delete_category(&self, slug: &str) -> Result<()> {
        validate_slug(slug)?;
        let now_ms = self.now_ms();
        self.catalog_db()?
            .run(|tx, _| async move {
                if tx.get(&keys::category(slug)).await?.is_none() {
                    return Err(CommerceError::NotFound {
                        what: "category",
                        id: slug.to_owned(),
                    });
                }
                let members = tx
                    .get_range(
                        &RangeOption::subspace(&keys::category_members(slug)).limit(1),
                        false,
                    )
                    .await?;
                if !members.kvs.is_empty() {
                    return Err(CommerceError::CategoryInUse {
                        slug: slug.to_owned(),
                    });
                }
                let version = bump_version(&tx).await?;
                tx.clear(&keys::category(slug))?;
                append_event(
                    &tx,
                    0,
                    version,
                    now_ms,
                    Change::CategoryDeleted {
                        slug: slug.to_owned(),
                    },
                    vec![category_tag(slug)],
                    &State::Gone,
                )?;
                Ok(())
            })
            .await
    }

    /// Every category, where this region reads the catalog.
    pub async fn list_categories(&self) -> Result<Vec<Category>> {
        let kvs = self
            .catalog_read_db()?
            .run(|tx, _| async move {
                Ok::<_, CommerceError>(
                    tx.get_range_all(
                        RangeOption::subspace(&keys::categories()).limit(MAX_LIST_LIMIT),
                        true,
                    )
                    .await?,
                )
            })
            .await?;
        kvs.iter()
            .map(|kv| crate::decode(&kv.value, "category"))
            .collect()
    }

    /// Creates or replaces one product.
    pub async fn upsert_product(&self, sku: &str, input: &ProductInput) -> Result<Product> {
        let mut products = self
            .upsert_products(vec![(sku.to_owned(), input.clone())])
            .await?;
        products.pop().ok_or(CommerceError::NotFound {
            what: "product",
            id: sku.to_owned(),
        })
    }

    /// Creates or replaces up to [`MAX_BATCH_PRODUCTS`] products in one
    /// transaction: one catalog version, one feed event per product.
    pub async fn upsert_products(
        &self,
        batch: Vec<(String, ProductInput)>,
    ) -> Result<Vec<Product>> {
        if batch.len() > MAX_BATCH_PRODUCTS {
            return Err(CommerceError::LimitExceeded {
                what: "product batch",
                limit: MAX_BATCH_PRODUCTS as u64,
            });
        }
        for (sku, input) in &batch {
            validate_sku(sku)?;
            input.validate()?;
        }
        let now_ms = self.now_ms();
        let batch = &batch;
        let products = self
            .catalog_db()?
            .run(|tx, _| async move {
                let version = bump_version(&tx).await?;
                let slugs: std::collections::BTreeSet<&str> =
                    batch.iter().map(|(_, i)| i.category.as_str()).collect();
                for slug in slugs {
                    if tx.get(&keys::category(slug)).await?.is_none() {
                        return Err(CommerceError::UnknownCategory {
                            slug: slug.to_owned(),
                        });
                    }
                }
                let olds = read_products(&tx, batch.iter().map(|(sku, _)| sku.as_str())).await?;
                let mut out = Vec::with_capacity(batch.len());
                for (n, ((sku, input), old)) in batch.iter().zip(olds).enumerate() {
                    let n = u16::try_from(n).unwrap_or(u16::MAX);
                    out.push(write_product(&tx, n, version, now_ms, (sku, input), old)?);
                }
                Ok(out)
            })
            .await?;
        Ok(products)
    }

    pub async fn delete_product(&self, sku: &str) -> Result<()> {
        validate_sku(sku)?;
        let now_ms = self.now_ms();
        self.catalog_db()?
            .run(|tx, _| async move {
                let Some(old) = get_json::<Product>(&tx, &keys::product(sku), "product").await?
                else {
                    return Err(CommerceError::NotFound {
                        what: "product",
                        id: sku.to_owned(),
                    });
                };
                let version = bump_version(&tx).await?;
                tx.clear(&keys::product(sku))?;
                tx.clear(&keys::category_member(&old.category, sku))?;
                append_event(
                    &tx,
                    0,
                    version,
                    now_ms,
                    Change::ProductDeleted {
                        sku: sku.to_owned(),
                    },
                    vec![product_tag(sku), category_tag(&old.category)],
                    &State::Gone,
                )?;
                Ok(())
            })
            .await
    }

    /// A product, from this region's cache when it holds it, else its
    /// replica of the catalog (else the catalog shard).
    pub async fn product(&self, sku: &str) -> Result<Product> {
        // Any version will do.
        self.product_at_least(sku, 0).await
    }

    /// A product no older than catalog version `min_version`: from the
    /// cache when its copy is that recent, else from this region's replica
    /// of the catalog, else from the catalog shard itself (an edge that
    /// saw a purge for the product may ask before this region holds the
    /// same change).
    pub async fn product_at_least(&self, sku: &str, min_version: u64) -> Result<Product> {
        validate_sku(sku)?;
        if let Some(product) = self.cache().get(sku)
            && product.version >= min_version
        {
            return Ok((*product).clone());
        }
        let generation = self.cache().generation();
        let product = match self.product_uncached(sku).await {
            Ok(product) if product.version >= min_version => product,
            // "No such product" is the catalog's to say too: one created
            // a moment ago may not have reached this region's replica.
            Ok(_) | Err(CommerceError::UnknownSku { .. }) if self.reads_replica() => {
                self.product_from_catalog(sku).await?
            }
            other => other?,
        };
        self.cache().insert_if_current(generation, product.clone());
        Ok(product)
    }

    /// A product read where this region reads the catalog (its replica
    /// once ready, else the catalog shard), bypassing the cache.
    pub async fn product_uncached(&self, sku: &str) -> Result<Product> {
        read_product(self.catalog_read_db()?, sku).await
    }

    /// A product read from the catalog shard itself: its latest version.
    pub async fn product_from_catalog(&self, sku: &str) -> Result<Product> {
        read_product(self.catalog_db()?, sku).await
    }

    /// The current catalog version.
    pub async fn catalog_version(&self) -> Result<u64> {
        let version = self
            .catalog_db()?
            .run(|tx, _| async move { get_counter(&tx, &keys::catalog_version(), true).await })
            .await?;
        Ok(u64::try_from(version).unwrap_or(0))
    }

    /// Every product, in SKU order, in pages of `page` read in separate
    /// transactions (so any catalog size stays inside the MVCC window),
    /// where this region reads the catalog.
    pub async fn for_each_product(
        &self,
        page: usize,
        mut f: impl FnMut(Vec<Product>) -> Result<()>,
    ) -> Result<usize> {
        let mut from = None;
        let mut total = 0;
        loop {
            let (products, next) = self.product_page(from, page).await?;
            total += products.len();
            f(products)?;
            match next {
                Some(next) => from = Some(next),
                None => return Ok(total),
            }
        }
    }

    /// Up to `page` products (at most `db::MAX_RANGE_BATCH`) from key
    /// `from` on (`None`: the first), in one transaction where this region
    /// reads the catalog, and the key the next page starts at (`None`
    /// after the last).
    pub(crate) async fn product_page(
        &self,
        from: Option<Vec<u8>>,
        page: usize,
    ) -> Result<(Vec<Product>, Option<Vec<u8>>)> {
        let page = page.clamp(1, db::MAX_RANGE_BATCH);
        let (begin, end) = keys::products().range();
        let start = from.unwrap_or(begin);
        let (start, end) = (&start, &end);
        let chunk = self
            .catalog_read_db()?
            .run(|tx, _| async move {
                Ok::<_, CommerceError>(
                    tx.get_range(
                        &RangeOption::new(start.clone(), end.clone())
                            .limit(page)
                            .batch_size(page),
                        true,
                    )
                    .await?,
                )
            })
            .await?;
        let next = match chunk.kvs.last() {
            Some(last) if chunk.more => Some(db::keys::key_after(&last.key)),
            _ => None,
        };
        let products = chunk
            .kvs
            .iter()
            .map(|kv| crate::decode(&kv.value, "product"))
            .collect::<Result<Vec<Product>>>()?;
        Ok((products, next))
    }
}
