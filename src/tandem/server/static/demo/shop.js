// Northwind Outfitters demo shop. No inline scripts anywhere: this file does everything.
"use strict";

const PRODUCTS = [
  { id: "tent", name: "Ridgeline 2P Tent", price: 349, text: "Two-person, three-season tent. 1.9 kg, pitches in four minutes." },
  { id: "pack", name: "Cascade 45L Pack", price: 189, text: "Ventilated back panel, rain cover, fits carry-on limits." },
  { id: "jacket", name: "Stormshell Jacket", price: 229, text: "Waterproof, breathable 3-layer shell with pit zips." },
  { id: "bag", name: "Alpine Down Sleeping Bag", price: 279, text: "Rated to -5 °C, 650-fill responsibly sourced down." },
  { id: "stove", name: "Ember Camp Stove", price: 59, text: "Boils a litre in three minutes. Folds to pocket size." },
  { id: "socks", name: "Trail Socks (3 pairs)", price: 36, text: "Merino blend, cushioned heel, lifetime guarantee." },
];
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
  const shown = PRODUCTS.filter((p) => !needle || `${p.name} ${p.text}`.toLowerCase().includes(needle));
  grid.replaceChildren(...shown.map((p) => {
    const index = PRODUCTS.indexOf(p);
    const add = el("button", { class: "primary", type: "button", text: "Add to cart" });
    add.addEventListener("click", () => {
      const cart = readCart();
      cart[p.id] = (cart[p.id] || 0) + 1;
      writeCart(cart);
      add.textContent = "Added ✓";
      setTimeout(() => { add.textContent = "Add to cart"; }, 1200);
    });
    return el("article", { class: "product" }, [
      el("div", { class: `art art-${index}`, "aria-hidden": "true", text: p.name[0] }),
      el("div", { class: "body" }, [
        el("h2", { text: p.name }), el("p", { text: p.text }),
        el("div", { class: "row" }, [el("span", { class: "price", text: money(p.price) }), add]),
      ]),
    ]);
  }));
  byId("no-results").hidden = shown.length > 0;
}

function cartLines() {
  const cart = readCart();
  return PRODUCTS.filter((p) => cart[p.id] > 0).map((p) => ({ product: p, qty: cart[p.id] }));
}

function renderCart() {
  const lines = cartLines();
  const body = byId("cart-lines");
  body.replaceChildren(...lines.map(({ product, qty }) => {
    const input = el("input", { type: "number", min: "1", max: "20", value: String(qty), "aria-label": `Quantity of ${product.name}`, "data-tandem-unmask": "" });
    input.addEventListener("change", () => {
      const cart = readCart();
      cart[product.id] = Math.max(1, Math.min(20, parseInt(input.value, 10) || 1));
      writeCart(cart);
      renderCart();
    });
    const remove = el("button", { class: "link", type: "button", text: "Remove" });
    remove.addEventListener("click", () => {
      const cart = readCart();
      delete cart[product.id];
      writeCart(cart);
      renderCart();
    });
    return el("tr", {}, [
      el("td", { text: product.name }), el("td", { text: money(product.price) }),
      el("td", { class: "qty" }, [input]), el("td", { text: money(product.price * qty) }), el("td", {}, [remove]),
    ]);
  }));
  const total = lines.reduce((sum, l) => sum + l.product.price * l.qty, 0);
  byId("cart-total").textContent = money(total);
  byId("cart-empty").hidden = lines.length > 0;
  byId("cart-table").hidden = lines.length === 0;
  byId("to-checkout").hidden = lines.length === 0;
}

function renderCheckout() {
  const lines = cartLines();
  byId("summary").replaceChildren(...(lines.length
    ? lines.map((l) => el("li", { text: `${l.qty} × ${l.product.name} — ${money(l.product.price * l.qty)}` }))
    : [el("li", { text: "Your cart is empty (you can still try the form)." })]));
  byId("summary-total").textContent = money(lines.reduce((s, l) => s + l.product.price * l.qty, 0));
  byId("checkout-form").addEventListener("submit", (event) => {
    event.preventDefault();
    byId("order-done").hidden = false;
    localStorage.removeItem(CART_KEY);
    renderCount();
  });
}

function renderAccount() {
  const signedIn = sessionStorage.getItem("northwind.signedIn") === "1";
  byId("signin-panel").hidden = signedIn;
  byId("account-panel").hidden = !signedIn;
}

function setUpAccount() {
  renderAccount();
  byId("account-signin").addEventListener("submit", (event) => {
    event.preventDefault();
    sessionStorage.setItem("northwind.signedIn", "1");
    byId("account-password").value = "";
    renderAccount();
  });
  byId("account-signout").addEventListener("click", () => {
    sessionStorage.removeItem("northwind.signedIn");
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
      error.textContent = e instanceof Error ? e.message : "Help is unavailable right now.";
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
