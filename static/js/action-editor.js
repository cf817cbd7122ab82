/*
 * The action list editor: builds an ordered list of catalogue actions, each with its settings
 * ([{"action": key, "config": {...}}], the JSON prospects/actions/services.py actions_validate
 * cleans).
 *
 * Markup (templates/prospects/actions/_editor.html renders it):
 *   <div data-action-editor data-catalogue="ID" data-initial="ID" data-errors="ID" data-i18n="ID"
 *        data-max-actions="20">
 *     <script type="application/json" id="ID">…</script>  (catalogue, initial list, errors, strings)
 *     <ol data-action-items></ol>
 *     <div data-action-add></div>
 *     <input type="hidden" name="…" data-action-output>
 *   </div>
 *
 * Each catalogue entry describes its settings as fields (name, label, type text / textarea /
 * number / select / checkbox, choices, required, initial); actions that are not available are
 * offered disabled, with the reason. No dependencies, no eval, no inline handlers: it runs
 * under a strict Content-Security-Policy. Structural edits (add, move, remove) redraw the list;
 * typing only updates the state, so focus and the caret stay put. Every edit writes the JSON
 * into the hidden input, which a plain form POST submits.
 */
(() => {
  "use strict";

  if (window.mappActionEditor) {
    return; // the include appears twice on this page: one copy of the script is enough
  }

  const DEFAULT_MAX_ACTIONS = 20; // prospects/actions/services.py MAX_ACTIONS

  const uids = new WeakMap();
  let nextUid = 1;
  function uidOf(object) {
    if (!uids.has(object)) {
      uids.set(object, nextUid++);
    }
    return uids.get(object);
  }

  function isObject(value) {
    return value !== null && typeof value === "object" && !Array.isArray(value);
  }

  function format(template, values) {
    return String(template || "").replace(/\{(\w+)\}/g, (whole, key) =>
      key in values ? String(values[key]) : whole,
    );
  }

  function readJson(id) {
    const element = id ? document.getElementById(id) : null;
    if (!element) {
      return null;
    }
    try {
      return JSON.parse(element.textContent);
    } catch (error) {
      return null;
    }
  }

  function display(value) {
    return value === null || value === undefined ? "" : String(value);
  }

  // Full-width digits (３) are what people type in Japan; the server normalises the same way.
  // Anything that is not a whole number is sent as typed so the server can say what is wrong.
  function parseWholeNumber(raw) {
    const text = String(raw).normalize("NFKC").replace(/,/g, "").trim();
    if (/^[-+]?\d+$/.test(text)) {
      const number = Number(text);
      if (Number.isSafeInteger(number)) {
        return number;
      }
    }
    return text === "" ? "" : raw;
  }

  // A tiny element factory: h("button", {type: "button", class: "x", text: "…"}, child, …).
  function h(tag, attributes, ...children) {
    const element = document.createElement(tag);
    for (const [name, value] of Object.entries(attributes || {})) {
      if (value === null || value === undefined || value === false) {
        continue;
      }
      if (name === "class") {
        element.className = value;
      } else if (name === "text") {
        element.textContent = value;
      } else if (value === true) {
        element.setAttribute(name, "");
      } else {
        element.setAttribute(name, String(value));
      }
    }
    for (const child of children.flat()) {
      if (child !== null && child !== undefined && child !== false) {
        element.append(child);
      }
    }
    return element;
  }

  class ActionEditor {
    constructor(root) {
      this.root = root;
      const catalogue = readJson(root.dataset.catalogue);
      this.catalogue = Array.isArray(catalogue) ? catalogue.filter(isObject) : [];
      this.actions = new Map(this.catalogue.map((action) => [action.key, action]));
      this.text = readJson(root.dataset.i18n) || {};
      this.maxActions = Number(root.dataset.maxActions) || DEFAULT_MAX_ACTIONS;
      this.list = root.querySelector("[data-action-items]");
      this.adder = root.querySelector("[data-action-add]");
      this.output = root.querySelector("input[data-action-output]");
      this.chosen = "";

      let initial = readJson(root.dataset.initial);
      if (typeof initial === "string") {
        // the stored list or the posted text, as JSON text
        try {
          initial = JSON.parse(initial);
        } catch (error) {
          initial = null;
        }
      }
      const errors = readJson(root.dataset.errors);
      this.items = (Array.isArray(initial) ? initial : []).map((raw, index) => {
        const item = isObject(raw) ? raw : {};
        const messages = isObject(errors) ? errors[String(index)] : null;
        return {
          action: typeof item.action === "string" ? item.action : display(item.action),
          config: isObject(item.config) ? { ...item.config } : {},
          errors: Array.isArray(messages) ? messages.map(String) : [],
        };
      });
      this.render();
      this.write();
    }

    t(key) {
      return key in this.text ? this.text[key] : key;
    }

    // --- state -----------------------------------------------------------------------------------

    newItem(action) {
      const config = {};
      for (const field of action.fields || []) {
        if (field.initial !== null && field.initial !== undefined) {
          config[field.name] = field.type === "select" ? String(field.initial) : field.initial;
        } else if (field.type === "checkbox") {
          config[field.name] = false;
        } else {
          config[field.name] = "";
        }
      }
      return { action: action.key, config, errors: [] };
    }

    write() {
      if (!this.output) {
        return;
      }
      this.output.value = JSON.stringify(
        this.items.map((item) => ({ action: item.action, config: item.config })),
      );
      this.output.dispatchEvent(new Event("change", { bubbles: true }));
    }

    // Structural edits redraw the list, then record it.
    edit(change, focusKey) {
      change();
      this.render();
      if (focusKey) {
        this.focus(focusKey);
      }
      this.write();
    }

    // A value edit: the item's server errors no longer apply to what is typed now.
    changed(item, row) {
      if (item.errors.length) {
        item.errors = [];
        row.classList.remove("cb-invalid");
        const note = row.querySelector(":scope > .cb-error");
        if (note) {
          note.hidden = true;
          note.textContent = "";
        }
      }
      this.write();
    }

    // --- drawing ---------------------------------------------------------------------------------

    focus(key) {
      const element = this.root.querySelector(`[data-focus="${CSS.escape(key)}"]`);
      if (element) {
        element.focus();
      }
    }

    render() {
      this.list.replaceChildren(
        ...this.items.map((item, index) => this.renderItem(item, index)),
      );
      if (!this.items.length) {
        this.list.append(h("li", { class: "cb-empty", text: this.t("empty") }));
      }
      this.renderAdder();
    }

    renderAdder() {
      const atLimit = this.items.length >= this.maxActions;
      const select = h("select", {
        class: "cb-select",
        "aria-label": this.t("add_label"),
        "data-focus": "add-select",
        "data-part": "add-action",
        disabled: atLimit,
      });
      select.append(h("option", { value: "", text: this.t("choose_action") }));
      for (const action of this.catalogue) {
        const available = action.available !== false;
        const option = h("option", {
          value: action.key,
          disabled: !available,
          title: available ? action.description || null : action.unavailable_reason || null,
          text: available
            ? action.label
            : format(this.t("unavailable_option"), {
                label: action.label,
                reason: action.unavailable_reason || "",
              }),
        });
        select.append(option);
      }
      const chosen = this.actions.get(this.chosen);
      select.value = chosen && chosen.available !== false ? this.chosen : "";
      const button = h("button", {
        type: "button",
        class: "button cb-add",
        "data-action": "add-action",
        "data-focus": "add-button",
        text: this.t("add"),
        disabled: atLimit || !select.value,
      });
      select.addEventListener("change", () => {
        this.chosen = select.value;
        button.disabled = atLimit || !select.value;
      });
      button.addEventListener("click", () => {
        const action = this.actions.get(select.value);
        if (!action || action.available === false) {
          return;
        }
        const item = this.newItem(action);
        this.chosen = "";
        const first = (action.fields || [])[0];
        this.edit(
          () => this.items.push(item),
          first ? `${uidOf(item)}:${first.name}` : "add-select",
        );
      });
      const parts = [select, button];
      if (atLimit) {
        parts.push(
          h("span", { class: "cb-suffix", text: format(this.t("limit"), { count: this.maxActions }) }),
        );
      }
      this.adder.replaceChildren(...parts);
    }

    renderItem(item, index) {
      const uid = uidOf(item);
      const action = this.actions.get(item.action);
      const row = h("li", {
        class: "cb-condition ae-item",
        "data-index": String(index),
        "data-action-key": item.action,
      });
      const title = h(
        "div",
        { class: "ae-item-head" },
        h("strong", { class: "ae-item-number", text: `${index + 1}.` }),
        " ",
        h("strong", { class: "ae-item-label", text: action ? action.label : item.action }),
      );
      if (action && action.description) {
        title.append(" ", h("span", { class: "cb-suffix", text: action.description }));
      }
      row.append(title);

      const controls = h("span", { class: "ae-item-controls" });
      const move = (offset, label, key) => {
        const button = h("button", {
          type: "button",
          class: "cb-remove",
          "data-action": key,
          "data-focus": `${uid}:${key}`,
          "aria-label": label,
          title: label,
          text: offset < 0 ? "↑" : "↓",
          disabled: index + offset < 0 || index + offset >= this.items.length,
        });
        button.addEventListener("click", () =>
          this.edit(() => {
            const [moved] = this.items.splice(index, 1);
            this.items.splice(index + offset, 0, moved);
          }, `${uid}:${key}`),
        );
        return button;
      };
      const remove = h("button", {
        type: "button",
        class: "cb-remove",
        "data-action": "remove-action",
        "aria-label": this.t("remove"),
        title: this.t("remove"),
        text: "×",
      });
      remove.addEventListener("click", () =>
        this.edit(() => this.items.splice(index, 1), "add-select"),
      );
      controls.append(
        move(-1, this.t("move_up"), "move-up"),
        move(1, this.t("move_down"), "move-down"),
        remove,
      );
      row.append(controls);

      if (!action) {
        row.append(
          h("p", {
            class: "cb-error",
            text: format(this.t("unknown_action"), { key: item.action }),
          }),
        );
      } else {
        if (action.available === false) {
          row.append(
            h("p", {
              class: "cb-error",
              text: format(this.t("unavailable"), { reason: action.unavailable_reason || "" }),
            }),
          );
        }
        const fields = action.fields || [];
        if (!fields.length) {
          row.append(h("span", { class: "cb-suffix", text: this.t("no_settings") }));
        }
        for (const field of fields) {
          row.append(this.renderField(item, field, row));
        }
      }

      const note = h("p", { class: "cb-error", hidden: !item.errors.length });
      if (item.errors.length) {
        row.classList.add("cb-invalid");
        note.textContent = item.errors.join(" ");
      }
      row.append(note);
      return row;
    }

    renderField(item, field, row) {
      const uid = uidOf(item);
      const id = `${this.root.id || "action-editor"}-${uid}-${field.name}`;
      const focusKey = `${uid}:${field.name}`;
      const current = item.config[field.name];
      const store = (value) => {
        item.config[field.name] = value;
        this.changed(item, row);
      };
      const common = {
        id,
        "data-focus": focusKey,
        "data-field": field.name,
        // aria-required, not required: the browser would block the whole form's POST on an
        // empty setting; the server names what is missing, next to its action.
        "aria-required": field.required && field.type !== "checkbox" ? "true" : null,
        title: field.help || null,
      };
      const label = h("label", { for: id, class: "ae-field-label", text: field.label });
      if (field.required && field.type !== "checkbox") {
        label.append(h("span", { class: "required", "aria-hidden": "true", text: " *" }));
      }
      let control;
      if (field.type === "checkbox") {
        control = h("input", { ...common, type: "checkbox" });
        control.checked = Boolean(current);
        control.addEventListener("change", () => store(control.checked));
        return h("span", { class: "cb-option ae-field" }, control, label);
      }
      if (field.type === "select") {
        control = h("select", { ...common, class: "cb-select" });
        control.append(h("option", { value: "", text: this.t("choose") }));
        const wanted = display(current);
        let found = wanted === "";
        for (const [value, text] of field.choices || []) {
          control.append(h("option", { value: String(value), text: String(text) }));
          found = found || String(value) === wanted;
        }
        if (!found) {
          // Chosen once, gone since (a deleted list or user): kept visible, the server says why.
          control.append(
            h("option", { value: wanted, text: format(this.t("unknown_value"), { value: wanted }) }),
          );
        }
        control.value = wanted;
        control.addEventListener("change", () => store(control.value));
      } else if (field.type === "textarea") {
        control = h("textarea", {
          ...common,
          class: "cb-input ae-textarea",
          rows: 2,
          maxlength: field.max_length || null,
        });
        control.value = display(current);
        control.addEventListener("input", () => store(control.value));
      } else if (field.type === "number") {
        // Not type=number: it refuses full-width digits (３) and hides what was typed.
        control = h("input", {
          ...common,
          type: "text",
          inputmode: "numeric",
          class: "cb-input cb-number",
          value: display(current),
          placeholder: field.min !== null && field.max !== null ? `${field.min}–${field.max}` : null,
        });
        control.addEventListener("input", () => store(parseWholeNumber(control.value)));
      } else {
        control = h("input", {
          ...common,
          type: "text",
          class: "cb-input",
          value: display(current),
          maxlength: field.max_length || null,
        });
        control.addEventListener("input", () => store(control.value));
      }
      return h("span", { class: "cb-value ae-field" }, label, control);
    }
  }

  function init(scope) {
    const container = scope && scope.querySelectorAll ? scope : document;
    const found = [...container.querySelectorAll("[data-action-editor]")];
    if (container.matches && container.matches("[data-action-editor]")) {
      found.unshift(container);
    }
    for (const root of found) {
      if (!root.actionEditor) {
        root.actionEditor = new ActionEditor(root);
      }
    }
  }

  window.mappActionEditor = { init };
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", () => init(document));
  } else {
    init(document);
  }
  // Editors that arrive in an htmx swap.
  document.addEventListener("htmx:load", (event) => init(event.detail && event.detail.elt));
})();
