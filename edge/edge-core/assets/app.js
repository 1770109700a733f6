// Meridian's storefront: one page, plain JavaScript, over the edge's API
// (same origin, so every call is cached or forwarded by the POP that
// served the page). Routes live in the URL's hash. Nothing here trusts
// data as HTML: every text goes through textContent.
// (after infra/web/common.js: $, wait, h)

const main = $('main');
const store = {
  get(k) { try { return JSON.parse(localStorage.getItem('mrd.' + k)); } catch { return null; } },
  set(k, v) { v == null ? localStorage.removeItem('mrd.' + k) : localStorage.setItem('mrd.' + k, JSON.stringify(v)); },
};

const money = (m) => new Intl.NumberFormat('en', { style: 'currency', currency: m.currency }).format(m.amount_minor / 100);
// An idempotency key: 128 random bits (getRandomValues, unlike
// randomUUID, works on a plain-HTTP origin too).
const key = () => 'web-' + Array.from(crypto.getRandomValues(new Uint8Array(16)), (b) => b.toString(16).padStart(2, '0')).join('');

// The footer says which POP and region answered the page's last call;
// the notice says when a standby region serves the shopper's data.
function served(headers) {
  $('served-pop').textContent = headers.get('x-edge-pop') || '–';
  $('served-region').textContent = headers.get('x-meridian-region') || '–';
  $('served-cache').textContent = headers.get('x-cache') || 'not cached';
  const home = headers.get('x-meridian-failover');
  if (home) notice(`Your region (${home}) is failing over; your order is safe. ` +
    `${headers.get('x-meridian-region') || 'Another region'} is serving you meanwhile.`);
}
function notice(text) { $('notice').textContent = text || ''; }

class Problem extends Error {
  constructor(status, body) {
    super((body && (body.detail || body.title)) || `HTTP ${status}`);
    this.status = status;
    this.body = body || {};
    this.slug = (this.body.type || '').replace('urn:meridian:problem:', '');
  }
}

// One call. Writes carry an idempotency key and are resent with the same
// key while the answer says nothing was applied (503), the outcome is
// unknown (504), or the network lost it: the region applies a key once.
// Bounded: at most 7 tries, about 20 s in all.
async function call(method, path, { body, idem, session = true } = {}) {
  const headers = { accept: 'application/json' };
  if (body !== undefined) headers['content-type'] = 'application/json';
  if (idem) headers['idempotency-key'] = idem;
  const s = session && store.get('session');
  if (s) headers.authorization = 'Bearer ' + s.token;
  const retry = method === 'GET' || idem || path === '/v1/sessions';
  for (let attempt = 0; ; attempt++) {
    let res;
    try {
      res = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
    } catch {
      res = null;
    }
    const transient = !res || res.status === 503 || res.status === 504 || res.status === 429;
    if (transient && retry && attempt < 6) {
      if (res?.status !== 429) notice('Your region is failing over; your order is safe. Retrying…');
      const after = Number(res?.headers.get('retry-after')) * 1000;
      await wait(after > 0 ? Math.min(after, 5000) : Math.min(250 * 2 ** attempt, 4000));
      continue;
    }
    if (!res) throw new Problem(0, { title: 'Network error', detail: 'the shop could not be reached; check your connection' });
    served(res.headers);
    if (attempt > 0 && res.ok && !res.headers.get('x-meridian-failover')) notice('');
    const text = await res.text();
    let data = null;
    try { data = text ? JSON.parse(text) : null; } catch { data = null; }
    if (res.status === 401 && session && s) {
      // The session expired or its key rotated past it: start afresh.
      store.set('session', null);
      store.set('cart', null);
    }
    if (!res.ok) throw new Problem(res.status, data);
    return { status: res.status, data, headers: res.headers };
  }
}

async function session() {
  const s = store.get('session');
  if (s && s.expires_ms > Date.now() + 60000) return s;
  const { data } = await call('POST', '/v1/sessions', { body: {}, session: false });
  store.set('session', data);
  store.set('cart', null);
  return data;
}

// The shopper's cart: created once (with a key, so a resend cannot make
// a second one), forgotten when it is gone.
async function cart(create) {
  await session();
  let id = store.get('cart');
  if (id) {
    try { return (await call('GET', `/v1/carts/${id}`)).data; } catch (e) {
      if (e.status !== 404 && e.status !== 403) throw e;
      store.set('cart', null);
    }
  }
  if (!create) return null;
  const pending = store.get('cart-key') || key();
  store.set('cart-key', pending);
  const { data } = await call('POST', '/v1/carts', { idem: pending });
  store.set('cart', data.id);
  store.set('cart-key', null);
  return data;
}

function count(c) {
  $('cart-count').textContent = c ? c.lines.reduce((n, l) => n + l.qty, 0) : 0;
}

function page(title, ...children) {
  document.title = `${title} · Meridian`;
  main.replaceChildren(h('h1', { text: title }), ...children);
}

function failure(e) {
  const box = h('div.alert', { role: 'alert' }, h('strong', { text: e.body?.title || 'Something went wrong' }), h('p', { text: e.message }));
  return box;
}

// Pages.

async function home() {
  const [{ data: cats }, popular] = await Promise.all([
    call('GET', '/v1/categories', { session: false }),
    recommended('/v1/popular?limit=8'),
  ]);
  // Before the first recommendations are computed: the catalog itself.
  const shown = popular.length ? popular
    : (await call('GET', '/v1/search?sort=title_asc&limit=8', { session: false })).data.hits;
  page('Meridian',
    h('h2', { text: 'Shop by category' }),
    h('ul.grid', {}, cats.map((c) => h('li', {}, h('a', { href: `#/search?category=${encodeURIComponent(c.slug)}`, text: c.name })))),
    h('section', { id: 'popular', 'aria-labelledby': 'popular-title' },
      h('h2', { id: 'popular-title', text: popular.length ? 'Popular near you' : 'From the catalog' }),
      results(shown)));
}

// Recommendations (computed in batch, cached at the edge): the products a
// list names, each read as the product page reads it (cached too). None
// when the list is empty or cannot be read: the page shows without them.
async function recommended(path) {
  try {
    const { data } = await call('GET', path, { session: false });
    const products = await Promise.all(data.items.map((r) =>
      call('GET', `/v1/products/${encodeURIComponent(r.sku)}`, { session: false }).then((x) => x.data, () => null)));
    return products.filter(Boolean);
  } catch {
    return [];
  }
}

function results(hits) {
  if (!hits.length) return h('p', { text: 'No products match.' });
  return h('ul.grid', {}, hits.map((p) => h('li', {},
    h('a', { href: `#/product/${encodeURIComponent(p.sku)}`, text: p.title }),
    h('div.price', { text: money(p.price) }),
    h('div.muted', { text: p.category }))));
}

const SORTS = [['relevance', 'Relevance'], ['price_asc', 'Price: low to high'], ['price_desc', 'Price: high to low'], ['title_asc', 'Name']];
const PAGE = 12;

async function search(params) {
  const q = params.get('q') || '';
  const category = params.get('category') || '';
  const min = params.get('min') || '';
  const max = params.get('max') || '';
  const sort = params.get('sort') || 'relevance';
  const offset = Math.max(0, Number(params.get('offset')) || 0);
  const api = new URLSearchParams({ sort, offset, limit: PAGE });
  if (q) api.set('q', q);
  if (category) api.set('category', category);
  if (min) api.set('price_min_minor', Math.round(Number(min) * 100));
  if (max) api.set('price_max_minor', Math.round(Number(max) * 100));
  const [{ data: cats }, { data: found }] = await Promise.all([
    call('GET', '/v1/categories', { session: false }),
    call('GET', '/v1/search?' + api, { session: false }),
  ]);
  const field = (label, input) => h('label', {}, label, input);
  const form = h('form.filters', { id: 'filters', 'aria-label': 'Filters' },
    field('Words', h('input', { name: 'q', type: 'search', value: q, maxlength: 200 })),
    field('Category', h('select', { name: 'category' }, h('option', { value: '', text: 'All' }),
      cats.map((c) => h('option', { value: c.slug, text: c.name, selected: c.slug === category })))),
    field('Min price', h('input', { name: 'min', type: 'number', min: 0, step: '0.01', value: min, inputmode: 'decimal' })),
    field('Max price', h('input', { name: 'max', type: 'number', min: 0, step: '0.01', value: max, inputmode: 'decimal' })),
    field('Sort by', h('select', { name: 'sort' }, SORTS.map(([v, t]) => h('option', { value: v, text: t, selected: v === sort })))),
    h('button', { type: 'submit', text: 'Apply' }));
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    const next = new URLSearchParams();
    for (const [k, v] of new FormData(form)) if (v && !(k === 'sort' && v === 'relevance')) next.set(k, v);
    location.hash = '#/search?' + next;
  });
  const nav = (to, text) => {
    const p = new URLSearchParams(params);
    p.set('offset', to);
    return h('a', { href: '#/search?' + p, text });
  };
  const last = Math.min(found.total, offset + found.hits.length);
  page(q ? `Results for “${q}”` : 'All products', form,
    h('p.muted', { text: found.total ? `${offset + 1}–${last} of ${found.total}` : '' }),
    results(found.hits),
    h('nav.row', { 'aria-label': 'Pages' },
      offset > 0 ? nav(Math.max(0, offset - PAGE), 'Previous page') : null,
      last < found.total ? nav(offset + PAGE, 'Next page') : null));
}

async function product(sku) {
  const base = `/v1/products/${encodeURIComponent(sku)}`;
  const [{ data: p }, { data: stock }, reviews, together] = await Promise.all([
    call('GET', base, { session: false }),
    call('GET', `${base}/availability`, { session: false }),
    reviewsSection(sku),
    recommended(`${base}/recommendations?limit=4`),
  ]);
  const available = stock.reduce((n, w) => n + Math.max(0, w.available), 0);
  const qty = h('input', { id: 'qty', type: 'number', min: 1, max: Math.max(1, Math.min(99, available)), value: 1, inputmode: 'numeric' });
  const status = h('p', { id: 'added', role: 'status' });
  const add = h('button', { type: 'submit', disabled: available === 0, text: 'Add to cart' });
  const form = h('form.row', { 'aria-label': 'Add to cart' }, h('label', { for: 'qty' }, 'Quantity'), qty, add);
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    add.disabled = true;
    try {
      const c = await cart(true);
      const { data } = await call('POST', `/v1/carts/${c.id}/items`, { body: { sku: p.sku, qty: Number(qty.value) }, idem: key() });
      count(data);
      status.replaceChildren('Added to your cart. ', h('a', { href: '#/cart', text: 'View cart' }));
    } catch (e) {
      status.replaceChildren(failure(e));
    } finally {
      add.disabled = available === 0;
    }
  });
  page(p.title,
    h('p.price', { text: money(p.price) }),
    h('p', { text: p.description }),
    h('p', { id: 'stock', class: available ? 'ok' : 'bad', text: available ? `In stock: ${available} available` : 'Out of stock' }),
    form, status,
    Object.keys(p.attributes).length ? h('dl', {}, Object.entries(p.attributes).flatMap(([k, v]) => [h('dt', { text: k }), h('dd', { text: v })])) : null,
    h('p.muted', {}, 'Category: ', h('a', { href: `#/search?category=${encodeURIComponent(p.category)}`, text: p.category })),
    together.length ? h('section', { id: 'together', 'aria-labelledby': 'together-title' },
      h('h2', { id: 'together-title', text: 'Customers also bought' }),
      results(together)) : null,
    reviews);
}

// Reviews: the summary and a page of reviews (cached at the edge, purged
// when they change), a helpful vote per review, the shopper's own review
// and its form. A review is saved by the shopper's home region at once
// and reaches every other shopper shortly after: the page says so.
const REVIEW_SORTS = [['newest', 'Newest'], ['helpful', 'Most helpful'], ['rating_high', 'Highest rating'], ['rating_low', 'Lowest rating']];
const stars = (n) => '★'.repeat(n) + '☆'.repeat(5 - n);

async function reviewsSection(sku) {
  const base = `/v1/products/${encodeURIComponent(sku)}/reviews`;
  const mine = store.get('session') ? call('GET', `${base}/mine`).then((r) => r.data, () => null) : Promise.resolve(null);
  const [{ data: summary }, own] = await Promise.all([call('GET', `${base}/summary`, { session: false }), mine]);
  const list = h('ol.reviews', { id: 'review-list' });
  const more = h('button.quiet', { type: 'button', text: 'More reviews' });
  const sort = h('select', { id: 'review-sort' }, REVIEW_SORTS.map(([v, t]) => h('option', { value: v, text: t })));
  let after = null;
  const load = async (reset) => {
    if (reset) { after = null; list.replaceChildren(); }
    const q = new URLSearchParams({ sort: sort.value, limit: '5' });
    if (after) q.set('after', after);
    const { data } = await call('GET', `${base}?${q}`, { session: false });
    list.append(...data.reviews.map(reviewItem));
    after = data.next;
    more.hidden = !after;
  };
  sort.addEventListener('change', () => load(true).catch((e) => list.replaceChildren(failure(e))));
  more.addEventListener('click', () => load(false).catch((e) => list.append(failure(e))));
  await load(true);
  const histogram = h('ul.histogram', { 'aria-label': 'Ratings' },
    [5, 4, 3, 2, 1].map((n) => h('li', { text: `${n} stars: ${summary.histogram[n - 1]}` })));
  return h('section', { id: 'reviews', 'aria-labelledby': 'reviews-title' },
    h('h2', { id: 'reviews-title', text: 'Reviews' }),
    h('p', { id: 'review-summary', text: summary.count
      ? `${summary.average.toFixed(1)} out of 5 stars from ${summary.count} review${summary.count === 1 ? '' : 's'}`
      : 'No reviews yet.' }),
    summary.count ? histogram : null,
    summary.count ? h('p.row', {}, h('label', { for: 'review-sort' }, 'Sort reviews by'), sort) : null,
    list, more,
    reviewForm(sku, own));
}

function reviewItem(r) {
  const voted = h('p', { role: 'status' });
  const helpful = h('button.quiet', { type: 'button', text: `Helpful (${r.helpful})` });
  helpful.addEventListener('click', async () => {
    helpful.disabled = true;
    try {
      await session();
      await call('POST', `/v1/reviews/${encodeURIComponent(r.id)}/helpful`, { idem: key() });
      voted.textContent = 'Thanks, your vote is counted.';
    } catch (e) {
      voted.replaceChildren(e.slug === 'own-review' ? 'This is your own review.' : failure(e));
      helpful.disabled = false;
    }
  });
  return h('li.card', {},
    h('h3', { text: r.title }),
    h('p', {}, h('span', { 'aria-hidden': 'true', text: stars(r.rating) + ' ' }), h('span', { text: `${r.rating} out of 5` })),
    h('p.muted', { text: `${r.name} · ${new Date(r.created_ms).toLocaleDateString('en')}${r.verified ? ' · Verified purchase' : ''}${r.edited ? ' · Edited' : ''}` }),
    r.body ? h('p', { lang: r.lang, text: r.body }) : null,
    h('div.row', {}, helpful, voted));
}

function reviewForm(sku, own) {
  const field = (id, label, input) => h('p.field', {}, h('label', { for: id }, label), input);
  const rating = h('select', { id: 'review-rating', required: true },
    [5, 4, 3, 2, 1].map((n) => h('option', { value: n, text: `${n} star${n === 1 ? '' : 's'}` })));
  const title = h('input', { id: 'review-title', required: true, maxlength: 120 });
  const body = h('textarea', { id: 'review-body', rows: 4, maxlength: 4000 });
  const name = h('input', { id: 'review-name', maxlength: 40, autocomplete: 'nickname' });
  if (own) {
    rating.value = String(own.rating);
    title.value = own.title;
    body.value = own.body;
    if (own.name !== 'A shopper') name.value = own.name;
  }
  const status = h('div', { id: 'review-status', role: 'status' });
  const save = h('button', { type: 'submit', text: own ? 'Update your review' : 'Post your review' });
  const form = h('form.review', { 'aria-labelledby': 'review-form-title' },
    h('h3', { id: 'review-form-title', text: own ? 'Your review' : 'Write a review' }),
    own ? h('p.muted', { text: `Saved${own.verified ? ' · Verified purchase' : ''}${own.hidden ? ' · Hidden by a moderator' : ''}` }) : null,
    field('review-rating', 'Rating', rating),
    field('review-title', 'Title', title),
    field('review-body', 'Your review', body),
    field('review-name', 'Name shown (optional)', name),
    save, status);
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    save.disabled = true;
    try {
      await session();
      const input = { rating: Number(rating.value), title: title.value, body: body.value, lang: (navigator.language || 'en').match(/^[a-z]{2,3}(-([A-Z]{2}|[0-9]{3}))?$/) ? navigator.language : 'en' };
      if (name.value.trim()) input.name = name.value.trim();
      const { data } = await call('PUT', `/v1/products/${encodeURIComponent(sku)}/reviews/mine`, { body: input, idem: key() });
      status.textContent = `Thanks, your review is saved${data.verified ? ' as a verified purchase' : ''}. Other shoppers will see it in a moment.`;
      save.textContent = 'Update your review';
    } catch (e) {
      status.replaceChildren(failure(e));
    } finally {
      save.disabled = false;
    }
  });
  return form;
}

// Titles and prices of a cart's or order's lines (cached at the edge).
async function titled(lines) {
  return Promise.all(lines.map(async (l) => {
    if (l.title) return l;
    try {
      const { data } = await call('GET', `/v1/products/${encodeURIComponent(l.sku)}`, { session: false });
      return { ...l, title: data.title, unit_price: data.price };
    } catch {
      return { ...l, title: l.sku };
    }
  }));
}

function total(lines) {
  const currency = lines[0]?.unit_price?.currency || 'EUR';
  return money({ currency, amount_minor: lines.reduce((n, l) => n + (l.unit_price?.amount_minor || 0) * l.qty, 0) });
}

async function cartPage() {
  const c = await cart(false);
  count(c);
  if (!c || !c.lines.length) return page('Your cart', h('p', {}, 'Your cart is empty. ', h('a', { href: '#/', text: 'Keep shopping' })));
  const lines = await titled(c.lines);
  const status = h('p', { role: 'status' });
  const change = async (method, sku, body) => {
    try {
      await call(method, `/v1/carts/${c.id}/items/${encodeURIComponent(sku)}`, { body, idem: key() });
      route();
    } catch (e) { status.replaceChildren(failure(e)); }
  };
  page('Your cart',
    h('table', {}, h('thead', {}, h('tr', {}, h('th', { text: 'Product' }), h('th', { text: 'Quantity' }), h('th.hide', { text: 'Price' }), h('th', { text: '' }))),
      h('tbody', {}, lines.map((l, i) => {
        const qty = h('input', { id: `qty-${i}`, type: 'number', min: 1, max: 99, value: l.qty, inputmode: 'numeric' });
        return h('tr', {},
          h('td', {}, h('a', { href: `#/product/${encodeURIComponent(l.sku)}`, text: l.title })),
          h('td', {}, h('label.sr', { for: `qty-${i}`, text: `Quantity of ${l.title}` }), qty,
            h('button.quiet', { type: 'button', 'aria-label': `Update quantity of ${l.title}`, onclick: () => change('PUT', l.sku, { qty: Number(qty.value) }), text: 'Update' })),
          h('td.hide', { text: l.unit_price ? money(l.unit_price) : '' }),
          h('td', {}, h('button.quiet', { type: 'button', 'aria-label': `Remove ${l.title}`, onclick: () => change('DELETE', l.sku), text: 'Remove' })));
      }))),
    h('p.price', { text: `Total: ${total(lines)}` }),
    status,
    h('p', {}, h('a', { href: '#/checkout', id: 'to-checkout', text: 'Go to checkout' })));
}

async function checkoutPage() {
  const c = await cart(false);
  if (!c || !c.lines.length) return page('Checkout', h('p', {}, 'Your cart is empty. ', h('a', { href: '#/', text: 'Keep shopping' })));
  const lines = await titled(c.lines);
  const status = h('div', { role: 'status' });
  const place = h('button', { type: 'submit', text: 'Place order' });
  const form = h('form', { 'aria-label': 'Place order' },
    h('p.muted', { text: 'Payment: the shop\'s simulated card (test mode). You are charged only once, whatever happens to the network.' }),
    place);
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    place.disabled = true;
    status.replaceChildren(h('p', { text: 'Placing your order…' }));
    // One key per checkout of this cart, kept until it settles: a reload
    // or a retry after a failover resumes the same order.
    const pending = store.get('checkout');
    const idem = pending && pending.cart === c.id ? pending.key : key();
    store.set('checkout', { cart: c.id, key: idem });
    try {
      for (let i = 0; ; i++) {
        const { status: code, data } = await call('POST', '/v1/checkout', { body: { cart_id: c.id }, idem });
        // 202: the payment is being confirmed; the same key asks again.
        if (code === 201 || i >= 10) {
          store.set('checkout', null);
          if (code === 201) store.set('cart', null);
          location.hash = `#/order/${data.id}`;
          return;
        }
        status.replaceChildren(h('p', { text: 'Your payment is being confirmed…' }));
        await wait(Math.min(500 * 2 ** i, 4000));
      }
    } catch (e) {
      if (e.status !== 0 && e.status < 500) store.set('checkout', null);
      status.replaceChildren(e.slug === 'checkout-failed'
        ? h('div.alert', { role: 'alert' }, h('strong', { text: 'We could not complete your order' }),
          h('p', { id: 'checkout-failure', text: `${capital(e.message)}. Nothing was charged.` }),
          h('p', {}, h('a', { href: '#/cart', text: 'Back to your cart' })))
        : failure(e));
      place.disabled = false;
    }
  });
  page('Checkout',
    h('ul', {}, lines.map((l) => h('li', { text: `${l.qty} × ${l.title}${l.unit_price ? ' — ' + money(l.unit_price) : ''}` }))),
    h('p.price', { text: `Total: ${total(lines)}` }),
    form, status);
}

const capital = (s) => s.charAt(0).toUpperCase() + s.slice(1);
const STATUS = { confirmed: 'Confirmed', pending: 'Payment being confirmed', failed: 'Failed: nothing was charged' };

async function orderPage(id) {
  await session();
  const { data: o } = await call('GET', `/v1/orders/${encodeURIComponent(id)}`);
  count(null);
  page(o.status === 'confirmed' ? 'Thank you for your order' : 'Your order',
    h('p', {}, 'Order ', h('code', { id: 'order-id', text: o.id })),
    h('p', { id: 'order-status', class: o.status === 'failed' ? 'bad' : 'ok', text: STATUS[o.status] || o.status }),
    o.failure ? h('p', { text: capital(o.failure) }) : null,
    h('ul', {}, o.lines.map((l) => h('li', { text: `${l.qty} × ${l.title} — ${money(l.unit_price)}` }))),
    h('p.price', { text: `Total: ${money(o.total)}` }),
    h('p', {}, h('a', { href: '#/orders', text: 'All your orders' })));
}

async function ordersPage() {
  const s = store.get('session');
  if (!s) return page('Your orders', h('p', { text: 'No orders yet.' }));
  const { data } = await call('GET', '/v1/orders');
  page('Your orders', data.orders.length
    ? h('table', {}, h('thead', {}, h('tr', {}, h('th', { text: 'Order' }), h('th', { text: 'Status' }), h('th', { text: 'Total' }))),
      h('tbody', {}, data.orders.map((o) => h('tr', {},
        h('td', {}, h('a', { href: `#/order/${encodeURIComponent(o.id)}`, text: new Date(o.created_ms).toLocaleString('en') })),
        h('td', { text: STATUS[o.status] || o.status }),
        h('td', { text: money(o.total) })))))
    : h('p', { text: 'No orders yet.' }));
}

// The router: the hash names the page.
async function route() {
  const [path, query] = (location.hash.slice(1) || '/').split('?');
  const params = new URLSearchParams(query || '');
  let parts;
  try { parts = path.split('/').filter(Boolean).map(decodeURIComponent); } catch { parts = ['?']; }
  main.setAttribute('aria-busy', 'true');
  try {
    if (!parts.length) await home();
    else if (parts[0] === 'search') await search(params);
    else if (parts[0] === 'product' && parts[1]) await product(parts[1]);
    else if (parts[0] === 'cart') await cartPage();
    else if (parts[0] === 'checkout') await checkoutPage();
    else if (parts[0] === 'order' && parts[1]) await orderPage(parts[1]);
    else if (parts[0] === 'orders') await ordersPage();
    else page('Not found', h('p', {}, 'No such page. ', h('a', { href: '#/', text: 'Go to the shop' })));
  } catch (e) {
    page(e.status === 404 ? 'Not found' : 'Something went wrong', failure(e), h('p', {}, h('a', { href: '#/', text: 'Go to the shop' })));
  }
  main.removeAttribute('aria-busy');
  // For tests and measurements: how many pages have rendered, and when
  // the first one did (a performance mark beside first-contentful-paint).
  main.dataset.renders = Number(main.dataset.renders || 0) + 1;
  if (!performance.getEntriesByName('meridian-content').length) performance.mark('meridian-content');
}

$('find').addEventListener('submit', (ev) => {
  ev.preventDefault();
  const q = $('find-q').value.trim();
  location.hash = '#/search?' + new URLSearchParams(q ? { q } : {});
});
window.addEventListener('hashchange', () => { route().then(() => main.focus()); });
route();
if (store.get('cart')) cart(false).then(count, () => {});
