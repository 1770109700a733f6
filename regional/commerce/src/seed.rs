//! The demo catalog: categories, products and stock in every warehouse,
//! generated deterministically from a seed (the same seed gives the same
//! catalog, byte for byte), written as a bulk import, so the feed, search
//! index and logs see it as any change.

use std::collections::BTreeMap;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::Commerce;
use topology::ShardId;

use crate::catalog::{CategoryInput, Money, ProductInput};
use crate::error::{CommerceError, Result, invalid};

/// Most products one seeding writes.
pub const MAX_PRODUCTS: usize = 1_000_000;

const CATEGORIES: &[(&str, &str, &[&str])] = &[
    (
        "apparel",
        "Apparel",
        &["T-Shirt", "Hoodie", "Jacket", "Sweater", "Shirt", "Dress"],
    ),
    (
        "footwear",
        "Footwear",
        &["Sneaker", "Boot", "Sandal", "Loafer", "Trail Runner"],
    ),
    (
        "kitchen",
        "Kitchen",
        &[
            "Skillet",
            "Chef Knife",
            "Kettle",
            "Cutting Board",
            "Dutch Oven",
        ],
    ),
    (
        "home",
        "Home",
        &["Lamp", "Throw Blanket", "Vase", "Cushion", "Wall Clock"],
    ),
    (
        "outdoor",
        "Outdoor",
        &[
            "Tent",
            "Backpack",
            "Sleeping Bag",
            "Headlamp",
            "Water Bottle",
        ],
    ),
    (
        "electronics",
        "Electronics",
        &["Headphones", "Speaker", "Charger", "Keyboard", "Mouse"],
    ),
    (
        "books",
        "Books",
        &["Novel", "Cookbook", "Field Guide", "Atlas", "Notebook"],
    ),
    (
        "toys",
        "Toys",
        &["Puzzle", "Building Set", "Plush Bear", "Kite", "Board Game"],
    ),
    (
        "beauty",
        "Beauty",
        &["Face Cream", "Shampoo", "Soap Bar", "Lip Balm", "Perfume"],
    ),
    (
        "garden",
        "Garden",
        &[
            "Planter",
            "Pruning Shears",
            "Watering Can",
            "Seed Kit",
            "Gloves",
        ],
    ),
    (
        "sports",
        "Sports",
        &[
            "Yoga Mat",
            "Dumbbell",
            "Tennis Racket",
            "Football",
            "Jump Rope",
        ],
    ),
    (
        "office",
        "Office",
        &[
            "Desk Organizer",
            "Fountain Pen",
            "Desk Lamp",
            "Planner",
            "Stapler",
        ],
    ),
];

const ADJECTIVES: &[&str] = &[
    "Classic",
    "Everyday",
    "Lightweight",
    "Rugged",
    "Compact",
    "Premium",
    "Vintage",
    "Modern",
    "Eco",
    "Cozy",
    "Sleek",
    "Heritage",
    "Urban",
    "Alpine",
    "Coastal",
    "Nordic",
];
const MATERIALS: &[&str] = &[
    "Cotton", "Wool", "Linen", "Leather", "Bamboo", "Steel", "Ceramic", "Oak", "Recycled",
    "Canvas", "Copper", "Glass",
];
const COLORS: &[&str] = &[
    "black",
    "white",
    "navy",
    "olive",
    "sand",
    "red",
    "forest green",
    "charcoal",
    "sky blue",
];
const SIZES: &[&str] = &["XS", "S", "M", "L", "XL", "one size"];

/// What [`Commerce::seed_demo`] does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SeedOptions {
    pub products: usize,
    pub seed: u64,
    /// Units per SKU per warehouse are drawn from `0..=max_stock`.
    pub max_stock: i64,
}

impl Default for SeedOptions {
    fn default() -> Self {
        SeedOptions {
            products: 10_000,
            seed: 42,
            max_stock: 200,
        }
    }
}

/// What a seeding wrote.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SeedReport {
    pub categories: usize,
    pub products: usize,
    pub stock_units: i64,
}

/// The demo categories.
pub fn demo_categories() -> Vec<(String, CategoryInput)> {
    CATEGORIES
        .iter()
        .map(|(slug, name, _)| {
            (
                (*slug).to_owned(),
                CategoryInput {
                    name: (*name).to_owned(),
                    parent: None,
                },
            )
        })
        .collect()
}

/// The SKU of demo product `i`.
pub fn demo_sku(i: usize) -> String {
    format!("MRD-{i:06}")
}

fn rng_for(seed: u64, i: usize, salt: u64) -> StdRng {
    // SplitMix-style mixing so neighbouring products get unrelated streams.
    let mut z = seed ^ (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ salt;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    StdRng::seed_from_u64(z ^ (z >> 31))
}

fn pick<'a>(rng: &mut StdRng, items: &[&'a str]) -> &'a str {
    items[rng.random_range(0..items.len())]
}

/// Demo product `i` of the catalog generated from `seed`.
pub fn demo_product(seed: u64, i: usize) -> (String, ProductInput) {
    let mut rng = rng_for(seed, i, 0);
    let (slug, _, nouns) = CATEGORIES[rng.random_range(0..CATEGORIES.len())];
    let adjective = pick(&mut rng, ADJECTIVES);
    let material = pick(&mut rng, MATERIALS);
    let noun = pick(&mut rng, nouns);
    let color = pick(&mut rng, COLORS);
    let size = pick(&mut rng, SIZES);
    let sku = demo_sku(i);
    let title = format!("{adjective} {material} {noun}");
    let description = format!(
        "A {} {} {} in {color}, made of {} {}. Item {sku}: built to last, easy to care for, \
         and backed by our two-year guarantee.",
        adjective.to_lowercase(),
        material.to_lowercase(),
        noun.to_lowercase(),
        material.to_lowercase(),
        if rng.random_bool(0.5) {
            "and recycled fibres"
        } else {
            "sourced responsibly"
        },
    );
    // Prices end in 99 or 49, from 4.99 to 499.99.
    let whole: i64 = rng.random_range(4..500);
    let cents = if rng.random_bool(0.5) { 99 } else { 49 };
    let mut attributes = BTreeMap::new();
    attributes.insert("color".to_owned(), color.to_owned());
    attributes.insert("size".to_owned(), size.to_owned());
    attributes.insert("material".to_owned(), material.to_lowercase());
    let images = (1..=rng.random_range(1..=3))
        .map(|n| format!("products/{sku}/{n}.jpg"))
        .collect();
    (
        sku,
        ProductInput {
            title,
            description,
            category: slug.to_owned(),
            price: Money {
                amount_minor: whole * 100 + cents,
                currency: "USD".to_owned(),
            },
            attributes,
            images,
        },
    )
}

/// Units of demo product `i` in the warehouse numbered `warehouse`.
pub fn demo_stock(seed: u64, i: usize, warehouse: usize, max_stock: i64) -> i64 {
    rng_for(seed, i, 1 + warehouse as u64).random_range(0..=max_stock.max(0))
}

/// The id of the import that writes the demo catalog of `seed`.
pub fn demo_import_id(seed: u64) -> String {
    format!("demo-{seed}")
}

/// Demo product `i` as a line of an import, with its stock in each of
/// `warehouses` (in topology order).
pub fn demo_line(
    options: &SeedOptions,
    i: usize,
    warehouses: &[ShardId],
) -> crate::import::ImportLine {
    let (sku, product) = demo_product(options.seed, i);
    let stock = warehouses
        .iter()
        .enumerate()
        .map(|(w, warehouse)| {
            (
                warehouse.as_str().to_owned(),
                demo_stock(options.seed, i, w, options.max_stock),
            )
        })
        .filter(|(_, qty)| *qty > 0)
        .collect();
    crate::import::ImportLine::new(sku, product, stock)
}

/// Lines of the demo import per piece of its body.
const LINES_PER_PIECE: usize = 256;

impl Commerce {
    /// Writes the demo catalog and its stock: the categories, then the
    /// products as an import ([`crate::import`], id [`demo_import_id`]) of
    /// NDJSON lines, so an interrupted seeding continues where it stopped.
    /// `progress` is told the number of products written so far after
    /// each chunk.
    pub async fn seed_demo(
        &self,
        options: SeedOptions,
        mut progress: impl FnMut(usize),
    ) -> Result<SeedReport> {
        if options.products == 0 || options.products > MAX_PRODUCTS {
            return Err(invalid("products", format!("must be 1..={MAX_PRODUCTS}")));
        }
        if !(0..=crate::inventory::MAX_QTY).contains(&options.max_stock) {
            return Err(invalid("max_stock", "must be 0..=1000000"));
        }
        let mut report = SeedReport::default();
        for (slug, input) in demo_categories() {
            self.upsert_category(&slug, &input).await?;
            report.categories += 1;
        }
        let id = demo_import_id(options.seed);
        let offset = match self.import_status(&id).await {
            Ok(status) => status.cursor,
            Err(CommerceError::NotFound { .. }) => 0,
            Err(e) => return Err(e),
        };
        let offset = usize::try_from(offset)
            .unwrap_or(usize::MAX)
            .min(options.products);
        let warehouses = self.warehouses();
        let pieces = (offset..options.products)
            .step_by(LINES_PER_PIECE)
            .map(move |start| {
                let end = (start + LINES_PER_PIECE).min(options.products);
                let mut piece = Vec::with_capacity((end - start) * 512);
                for i in start..end {
                    // Serializing our own plain data cannot fail.
                    let _ = serde_json::to_writer(&mut piece, &demo_line(&options, i, &warehouses));
                    piece.push(b'\n');
                }
                Ok::<_, std::convert::Infallible>(piece)
            });
        let status = self
            .import_products(
                &id,
                offset as u64,
                futures::stream::iter(pieces),
                |status| progress(usize::try_from(status.cursor).unwrap_or(usize::MAX)),
            )
            .await
            .map_err(|e| match e {
                crate::import::ImportError::Line { source, .. }
                | crate::import::ImportError::Store { source, .. } => source,
                other => invalid("seed", other.to_string()),
            })?
            .status;
        report.products = usize::try_from(status.cursor).unwrap_or(usize::MAX);
        report.stock_units = status.stock_units;
        Ok(report)
    }
}
