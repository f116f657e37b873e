// <concord-figure>: a live Concord figure for articles (EMBEDDING.md). The one script a writer
// loads; it defines the element and, only when a figure is first scrolled near (or its JS API is
// called), loads the wasm module ONCE for the whole page and mounts each figure through the
// module's exported `mount_figure` (crates/concord-web/src/figure.rs). wasm-bindgen cannot
// subclass HTMLElement, hence this shim.
//
// Everything is resolved next to this script, so a copy of the built site works on any static
// host and under any path: concord-web.js, concord-web_bg.wasm and style.css.

const HERE = import.meta.url;
const STYLE_URL = new URL('style.css', HERE).href;
const DEFAULT_HEIGHT = 420;
const MIN_HEIGHT = 160;
const MAX_HEIGHT = 2000;

let modulePromise = null;

/** The wasm module, loaded and initialised once per page however many figures it holds
 *  (calling wasm-bindgen's init twice breaks). A failed load may be retried by a later figure. */
function loadModule() {
  if (!modulePromise) {
    modulePromise = (async () => {
      // Read by the module's start function: mount no playground on this page.
      globalThis.concordEmbed = true;
      const m = await import(new URL('concord-web.js', HERE).href);
      await m.default({ module_or_path: new URL('concord-web_bg.wasm', HERE) });
      if (typeof m.mount_figure !== 'function') {
        throw new Error('concord-web.js has no mount_figure export (is this build older than the figure?)');
      }
      return m;
    })();
    modulePromise.catch(() => { modulePromise = null; });
  }
  return modulePromise;
}

/** The height to reserve before the figure loads: the `height` attribute clamped, else 420 px. */
function reservedHeight(el) {
  const h = Number.parseFloat(el.getAttribute('height') ?? '');
  return Number.isFinite(h) ? Math.min(MAX_HEIGHT, Math.max(MIN_HEIGHT, Math.round(h))) : DEFAULT_HEIGHT;
}

const MOTION = typeof matchMedia === 'function' ? matchMedia('(prefers-reduced-motion: reduce)') : null;

function reducedMotion() {
  return MOTION?.matches === true;
}

/** Mounted figures, told when the reader changes the reduced-motion setting while reading. */
const mounted = new Set();
MOTION?.addEventListener?.('change', () => {
  for (const handle of mounted) handle.setReducedMotion?.(reducedMotion());
});

// The shim's own few rules, applied at once (style.css arrives later): they reserve the space and
// style the loading and failure messages. A constructed sheet is not inline style for a CSP.
const SHIM_CSS = `
:host { display: block; max-width: 100%; min-width: 0; }
:host([hidden]) { display: none; }
.concord-embed-status {
  display: flex; align-items: center; justify-content: center; text-align: center;
  box-sizing: border-box; height: 100%; padding: 16px; border-radius: 10px;
  border: 1px dashed rgba(127, 127, 127, 0.45); color: inherit; opacity: 0.75;
  font: 14px/1.45 system-ui, sans-serif;
}
.concord-embed-status[hidden] { display: none; }
.concord-embed-status.concord-embed-error {
  opacity: 1; border: 1px solid #e6a19b; background: #fdecea; color: #5c1a14;
}
`;
let shimSheet = null;
function shimStyles(root) {
  try {
    shimSheet ??= new CSSStyleSheet();
    if (shimSheet.cssRules.length === 0) shimSheet.replaceSync(SHIM_CSS);
    root.adoptedStyleSheets = [shimSheet];
  } catch {
    // No constructable stylesheets (old browsers): a <style> element does the same.
    const style = document.createElement('style');
    style.textContent = SHIM_CSS;
    root.appendChild(style);
  }
}

class ConcordFigure extends HTMLElement {
  #root;
  #mountEl;
  #status;
  #handle = null;
  #mounting = null;
  #visible = false;
  #near = null;
  #onScreen = null;
  #attrs = null;
  #error = null;
  #readyWaiters = [];

  constructor() {
    super();
    this.#root = this.attachShadow({ mode: 'open' });
    shimStyles(this.#root);
    const link = document.createElement('link');
    link.rel = 'stylesheet';
    link.href = STYLE_URL;
    this.#status = document.createElement('div');
    this.#status.className = 'concord-embed-status';
    this.#status.setAttribute('part', 'status');
    this.#mountEl = document.createElement('div');
    this.#mountEl.className = 'concord-mount';
    this.#root.append(link, this.#status, this.#mountEl);
    this.addEventListener('concord-ready', () => this.#settleReady(null));
  }

  connectedCallback() {
    if (!this.hasAttribute('role')) this.setAttribute('role', 'figure');
    if (!this.#handle && !this.#mounting && !this.#error) this.#showStatus('Concord figure: loads when scrolled into view…');
    this.#reserve();
    // Lazy start: load and mount once the figure comes within about a viewport of the screen.
    this.#near = new IntersectionObserver((entries) => {
      if (entries.some((e) => e.isIntersecting)) this.#mount().catch(() => {});
    }, { rootMargin: '100% 0px 100% 0px' });
    this.#near.observe(this);
    // On screen or not: a figure off-screen does not advance (the handle pauses it).
    this.#onScreen = new IntersectionObserver((entries) => {
      const entry = entries[entries.length - 1];
      this.#visible = entry.isIntersecting;
      this.#handle?.setVisible(this.#visible);
    }, { threshold: 0 });
    this.#onScreen.observe(this);
    // Attribute changes apply live (the whole attribute map: removed ones return to defaults).
    this.#attrs = new MutationObserver(() => {
      this.#reserve();
      if (this.#handle) this.#handle.setAttributes(this.#attributes());
    });
    this.#attrs.observe(this, { attributes: true });
  }

  disconnectedCallback() {
    this.#near?.disconnect();
    this.#onScreen?.disconnect();
    this.#attrs?.disconnect();
    this.#near = this.#onScreen = this.#attrs = null;
    const handle = this.#handle;
    this.#handle = null;
    this.#mounting = null;
    if (handle) mounted.delete(handle);
    handle?.dispose();
  }

  /** True once the figure's runs exist (after `concord-ready`). */
  get ready() {
    return this.#handle?.ready === true;
  }

  /** Resolves (with the element) once the figure is ready; rejects if it cannot load. It does
   *  not start the figure: that happens when it is scrolled near, or on play()/step()/… */
  whenReady() {
    if (this.ready) return Promise.resolve(this);
    if (this.#error) return Promise.reject(this.#error);
    return new Promise((resolve, reject) => this.#readyWaiters.push({ resolve, reject }));
  }

  async play() { (await this.#started()).play(); }
  async pause() { (await this.#started()).pause(); }
  async reset() { return (await this.#started()).reset(); }
  async step(n = 1) { return (await this.#started()).step(n); }
  /** The figure's settings as attribute-space keys (null before the figure has mounted). */
  getState() { return this.#handle ? this.#handle.getState() : null; }
  /** Merge settings into the figure's state; resolves to the notices about bad values. */
  async setState(obj) { return (await this.#started()).setState(obj); }
  /** The run as JSON text (settings, data, weights, metrics history). */
  async exportRun() { return (await this.#started()).exportRun(); }
  /** Load a run exported by exportRun() or the playground; resolves to null or the error. */
  async importRun(text) { return (await this.#started()).importRun(text); }
  /** The detailed state (steps, runs with their losses, playing, visible); null before mount. */
  state() { return this.#handle ? this.#handle.state() : null; }
  /** The notices the figure shows (bad attribute values and what was used instead). */
  notices() { return this.#handle ? this.#handle.notices() : []; }

  #attributes() {
    return Object.fromEntries([...this.attributes].map((a) => [a.name, a.value]));
  }

  #reserve() {
    // Until the figure renders, hold its space so the article does not jump.
    if (!this.#handle) this.#status.style.minHeight = `${reservedHeight(this)}px`;
  }

  #showStatus(text, isError = false) {
    this.#status.hidden = false;
    this.#status.textContent = text;
    this.#status.classList.toggle('concord-embed-error', isError);
    if (isError) this.#status.setAttribute('role', 'alert');
    else this.#status.removeAttribute('role');
  }

  /** Mounted and ready: what the API methods wait for (they start a figure not yet started). */
  async #started() {
    const handle = await this.#mount();
    if (!handle.ready) await this.whenReady();
    return handle;
  }

  #mount() {
    if (this.#handle) return Promise.resolve(this.#handle);
    if (this.#mounting) return this.#mounting;
    this.#error = null;
    this.#showStatus('Loading Concord…');
    const attempt = (async () => {
      const m = await loadModule().catch((e) => { throw this.#fail(e, attempt); });
      if (this.#mounting !== attempt) throw new Error('the figure was removed from the page while loading');
      const env = { reducedMotion: reducedMotion(), visible: this.#visible };
      let handle;
      try {
        handle = m.mount_figure(this.#mountEl, this.#attributes(), env);
      } catch (e) {
        throw this.#fail(e, attempt);
      }
      this.#handle = handle;
      mounted.add(handle);
      this.#mounting = null;
      this.#near?.disconnect();
      this.#status.hidden = true;
      this.#status.style.minHeight = '';
      handle.setVisible(this.#visible);
      if (handle.ready) this.#settleReady(null);
      return handle;
    })();
    this.#mounting = attempt;
    attempt.catch(() => {}); // callers see the rejection; the figure shows it
    return attempt;
  }

  /** A load or mount failure: shown in the figure, fired as concord-error; the error to throw. */
  #fail(e, attempt) {
    const message = `This Concord figure could not start: ${e?.message ?? e}`;
    if (this.#mounting !== attempt) return new Error(message); // removed meanwhile: nothing to show
    this.#mounting = null;
    this.#error = new Error(message);
    this.#showStatus(message, true);
    this.#settleReady(this.#error);
    this.dispatchEvent(new CustomEvent('concord-error', { bubbles: true, composed: true, detail: { message } }));
    return this.#error;
  }

  #settleReady(error) {
    const waiters = this.#readyWaiters;
    this.#readyWaiters = [];
    for (const w of waiters) (error ? w.reject(error) : w.resolve(this));
  }
}

if (!customElements.get('concord-figure')) customElements.define('concord-figure', ConcordFigure);
