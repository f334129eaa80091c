// Northwind Outfitters demo shop. No inline scripts anywhere: this file does everything.
"use strict";

const PRODUCTS = [
  { id: "tent", name: "Ridgeline 2P Tent", price: 349, tag: "Shelter", img: "tent.svg", text: "Two-person, three-season tent. 1.9 kg, pitches in four minutes." },
  { id: "pack", name: "Cascade 45L Pack", price: 189, tag: "Packs", img: "pack.svg", text: "Ventilated back panel, rain cover, fits carry-on limits." },
  { id: "jacket", name: "Stormshell Jacket", price: 229, tag: "Clothing", img: "jacket.svg", text: "Waterproof, breathable 3-layer shell with pit zips." },
  { id: "bag", name: "Alpine Down Sleeping Bag", price: 279, tag: "Sleep", img: "sleeping-bag.svg", text: "Rated to -5 °C, 650-fill responsibly sourced down." },
  { id: "stove", name: "Ember Camp Stove", price: 59, tag: "Cooking", img: "stove.svg", text: "Boils a litre in three minutes. Folds to pocket size." },
  { id: "socks", name: "Trail Socks (3 pairs)", price: 36, tag: "Clothing", img: "socks.svg", text: "Merino blend, cushioned heel, lifetime guarantee." },
];
const IMG = (p) => `/demo/img/${p.img}`;
const CART_KEY = "northwind.cart";
const money = (n) => `$${n.toFixed(2)}`;
const byId = (id) => document.getElementById(id);

function readCart() {
  try {
    const cart = JSON.parse(localStorage.getItem(CART_KEY) || "{}");
    return cart && typeof cart === "object" ? cart : {};
  } catch {
    return {};
  }
}
function writeCart(cart) {
  localStorage.setItem(CART_KEY, JSON.stringify(cart));
  renderCount();
}
function renderCount() {
  const count = Object.values(readCart()).reduce((a, b) => a + b, 0);
  const badge = byId("cart-count");
  if (badge) badge.textContent = String(count);
}
function el(tag, props = {}, children = []) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(props)) {
    if (k === "text") node.textContent = v;
    else if (k === "class") node.className = v;
    else node.setAttribute(k, v);
  }
  node.append(...children);
  return node;
}

function renderProducts(filter = "") {
  const grid = byId("products");
  const needle = filter.trim().toLowerCase();
  const shown = PRODUCTS.filter((p) => !needle || `${p.name} ${p.tag} ${p.text}`.toLowerCase().includes(needle));
  grid.replaceChildren(...shown.map((p) => {
    // The button's text stays "Add to cart" (the agent's control notices name it); a toast confirms.
    const add = el("button", { class: "primary", type: "button", text: "Add to cart" });
    add.addEventListener("click", () => {
      const cart = readCart();
      cart[p.id] = (cart[p.id] || 0) + 1;
      writeCart(cart);
      toast(`${p.name} added to your cart`);
    });
    return el("article", { class: "product" }, [
      el("img", { class: "art", src: IMG(p), alt: "", width: "320", height: "180" }),
      el("div", { class: "body" }, [
        el("span", { class: "tag", text: p.tag }),
        el("h2", { text: p.name }), el("p", { text: p.text }),
        el("div", { class: "row" }, [el("span", { class: "price", text: money(p.price) }), add]),
      ]),
    ]);
  }));
  byId("no-results").hidden = shown.length > 0;
}

let toastTimer = 0;
function toast(message) {
  let box = byId("toast");
  if (!box) {
    box = el("div", { id: "toast", class: "toast", "aria-live": "polite" });
    document.body.append(box);
  }
  box.textContent = message;
  box.classList.add("show");
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => box.classList.remove("show"), 2200);
}

function cartLines() {
  const cart = readCart();
  return PRODUCTS.filter((p) => cart[p.id] > 0).map((p) => ({ product: p, qty: cart[p.id] }));
}

function renderCart() {
  const lines = cartLines();
  const body = byId("cart-lines");
  body.replaceChildren(...lines.map(({ product, qty }) => {
    const inputId = `qty-${product.id}`;
    const label = el("label", { for: inputId, class: "sr-only", text: `Quantity of ${product.name}` });
    const input = el("input", { id: inputId, type: "number", inputmode: "numeric", min: "1", max: "20", value: String(qty), "data-tandem-unmask": "" });
    input.addEventListener("change", () => {
      const cart = readCart();
      cart[product.id] = Math.max(1, Math.min(20, parseInt(input.value, 10) || 1));
      writeCart(cart);
      renderCart();
    });
    const remove = el("button", { class: "link", type: "button", text: "Remove", "aria-label": `Remove ${product.name}` });
    remove.addEventListener("click", () => {
      const cart = readCart();
      delete cart[product.id];
      writeCart(cart);
      renderCart();
    });
    return el("tr", {}, [
      el("td", {}, [el("div", { class: "item" }, [
        el("img", { class: "thumb", src: IMG(product), alt: "", width: "64", height: "36" }),
        el("span", { text: product.name }),
      ])]),
      el("td", { text: money(product.price) }),
      el("td", { class: "qty" }, [label, input]), el("td", { text: money(product.price * qty) }), el("td", {}, [remove]),
    ]);
  }));
  const total = lines.reduce((sum, l) => sum + l.product.price * l.qty, 0);
  byId("cart-total").textContent = money(total);
  byId("cart-empty").hidden = lines.length > 0;
  byId("cart-table").hidden = lines.length === 0;
  byId("cart-footer").hidden = lines.length === 0;
}

function renderCheckout() {
  const lines = cartLines();
  byId("summary").replaceChildren(...(lines.length
    ? lines.map((l) => el("li", { text: `${l.qty} × ${l.product.name} — ${money(l.product.price * l.qty)}` }))
    : [el("li", { text: "Your cart is empty (you can still try the form)." })]));
  byId("summary-total").textContent = money(lines.reduce((s, l) => s + l.product.price * l.qty, 0));
  byId("checkout-form").addEventListener("submit", (event) => {
    event.preventDefault();
    byId("order-number").textContent = `NW-${10500 + Math.floor(Math.random() * 9000)}`;
    byId("order-done").hidden = false;
    localStorage.removeItem(CART_KEY);
    renderCount();
  });
}

const SIGNED_IN_KEY = "northwind.signedIn";
const EMAIL_KEY = "northwind.email";

function renderAccount() {
  const signedIn = sessionStorage.getItem(SIGNED_IN_KEY) === "1";
  byId("signin-panel").hidden = signedIn;
  byId("account-panel").hidden = !signedIn;
  const email = sessionStorage.getItem(EMAIL_KEY);
  if (email) byId("account-shown-email").textContent = email;
}

function setUpAccount() {
  renderAccount();
  // Demo only: any email with an @ and any non-empty password sign in. Nothing leaves the page.
  byId("account-signin").addEventListener("submit", (event) => {
    event.preventDefault();
    const email = byId("account-email").value.trim();
    const password = byId("account-password");
    const error = byId("signin-error");
    if (!email.includes("@") || !password.value) {
      error.textContent = "Enter your email and password (demo: any email and password work).";
      error.hidden = false;
      return;
    }
    error.hidden = true;
    sessionStorage.setItem(SIGNED_IN_KEY, "1");
    sessionStorage.setItem(EMAIL_KEY, email);
    password.value = "";
    renderAccount();
  });
  byId("account-signout").addEventListener("click", () => {
    sessionStorage.removeItem(SIGNED_IN_KEY);
    sessionStorage.removeItem(EMAIL_KEY);
    byId("account-shown-email").textContent = "jordan.avery@example.com";
    renderAccount();
  });
}

function setUpHelp() {
  const button = byId("get-help");
  const error = byId("help-error");
  button.addEventListener("click", async () => {
    error.hidden = true;
    if (!window.Tandem) {
      error.textContent = "Help is unavailable right now.";
      error.hidden = false;
      return;
    }
    try {
      await window.Tandem.start();
    } catch (e) {
      // start()'s rejection says the SDK's own words; what the help server said (text of the
      // server's choosing) is apart, in its serverWords, for developers' logs. The page shows
      // its own words (the widget has told the customer why), and its developers' own mistakes
      // ("Tandem: policy.mask: ...").
      const own = e instanceof Error && e.message.startsWith("Tandem: ");
      if (!own) console.warn(e);
      error.textContent = own ? e.message : "Help is unavailable right now.";
      error.hidden = false;
    }
  });
}

renderCount();
setUpHelp();
const page = document.body.dataset.page;
if (page === "shop") {
  renderProducts();
  byId("search").addEventListener("input", (event) => renderProducts(event.target.value));
}
if (page === "cart") renderCart();
if (page === "checkout") renderCheckout();
if (page === "account") setUpAccount();
