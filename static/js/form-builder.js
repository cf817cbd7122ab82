/*
 * The form builder: the ordered field list of a form (forms/forms_builder.py FieldListField
 * cleans what it posts), and the copy buttons and merge-field menu of the forms pages.
 *
 * Markup (templates/forms/_field_builder.html renders it):
 *   <div data-form-builder data-catalogue="ID" data-initial="ID" data-errors="ID" data-i18n="ID"
 *        data-max-fields="100">
 *     <script type="application/json" id="ID">…</script>  (catalogue, initial rows, errors, strings)
 *     <ol data-field-items></ol>
 *     <div data-field-add></div>
 *     <input type="hidden" name="fields" data-field-output>
 *   </div>
 *
 * A row is {key, target, field_type, label, required, help_text, error_message, default_value,
 * choices: [..], consent_wording, show_if_known: "" | "field:KEY" | "prospect:NAME",
 * skip_if_known}. "target" is a prospect field name, "custom:KEY" or "" (not mapped); "key"
 * is the saved field's id or "new-N", so a progressive rule can point at a field not saved yet.
 * Rows are reordered with the up / down buttons or by dragging the handle.
 *
 * No dependencies, no eval, no inline handlers: it runs under a strict Content-Security-Policy.
 * Structural edits (add, move, remove, type or mapping change) redraw the list; typing only
 * updates the state, so focus and the caret stay where the user is. Every edit writes the JSON
 * into the hidden input, which a plain form POST submits; the server validates everything again.
 */
(() => {
  "use strict";

  if (window.mappFormBuilder) {
    return;
  }
  window.mappFormBuilder = true;

  const DEFAULT_MAX_FIELDS = 100; // forms/forms_builder.py MAX_FIELDS
  const CHOICE_TYPES = ["select", "radio", "checkbox"];
  const CUSTOM_PREFIX = "custom:";

  function isObject(value) {
    return value !== null && typeof value === "object" && !Array.isArray(value);
  }

  function text(value) {
    return value === null || value === undefined ? "" : String(value);
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

  // h("button", {type: "button", class: "x", text: "…"}, child, …)
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

  class FormBuilder {
    constructor(root) {
      this.root = root;
      const catalogue = readJson(root.dataset.catalogue) || {};
      this.types = Array.isArray(catalogue.types) ? catalogue.types : [];
      this.targets = Array.isArray(catalogue.targets) ? catalogue.targets.filter(isObject) : [];
      this.targetByValue = new Map(this.targets.map((target) => [target.value, target]));
      this.text = readJson(root.dataset.i18n) || {};
      this.maxFields = Number(root.dataset.maxFields) || DEFAULT_MAX_FIELDS;
      this.list = root.querySelector("[data-field-items]");
      this.adder = root.querySelector("[data-field-add]");
      this.output = root.querySelector("input[data-field-output]");
      this.nextNew = 1;
      this.dragFrom = null;

      let initial = readJson(root.dataset.initial);
      if (typeof initial === "string") {
        try {
          initial = JSON.parse(initial);
        } catch (error) {
          initial = null;
        }
      }
      const errors = readJson(root.dataset.errors) || {};
      this.rows = (Array.isArray(initial) ? initial : []).filter(isObject).map((raw, index) => {
        const messages = errors[String(index)];
        return this.rowFrom(raw, Array.isArray(messages) ? messages.map(String) : []);
      });
      for (const row of this.rows) {
        const match = /^new-(\d+)$/.exec(row.key);
        if (match) {
          this.nextNew = Math.max(this.nextNew, Number(match[1]) + 1);
        }
      }
      this.render();
      this.write();
    }

    t(key) {
      return key in this.text ? this.text[key] : key;
    }

    rowFrom(raw, errors) {
      const choices = Array.isArray(raw.choices) ? raw.choices.map(text) : [];
      return {
        key: text(raw.key) || `new-${this.nextNew++}`,
        target: text(raw.target),
        field_type: text(raw.field_type) || "text",
        label: text(raw.label),
        required: Boolean(raw.required),
        help_text: text(raw.help_text),
        error_message: text(raw.error_message),
        default_value: text(raw.default_value),
        choicesText: typeof raw.choices === "string" ? raw.choices : choices.join("\n"),
        consent_wording: text(raw.consent_wording),
        show_if_known: text(raw.show_if_known),
        skip_if_known: Boolean(raw.skip_if_known),
        errors,
      };
    }

    serialise(row) {
      return {
        key: row.key,
        target: row.target,
        field_type: row.field_type,
        label: row.label,
        required: row.required,
        help_text: row.help_text,
        error_message: row.error_message,
        default_value: row.default_value,
        choices: row.choicesText
          .split(/\r?\n/)
          .map((line) => line.trim())
          .filter((line) => line !== ""),
        consent_wording: row.consent_wording,
        show_if_known: row.show_if_known,
        skip_if_known: row.skip_if_known,
      };
    }

    write() {
      if (this.output) {
        this.output.value = JSON.stringify(this.rows.map((row) => this.serialise(row)));
      }
    }

    edit(change, focusKey) {
      change();
      this.render();
      this.write();
      if (focusKey) {
        const element = this.root.querySelector(`[data-focus="${CSS.escape(focusKey)}"]`);
        if (element) {
          element.focus();
        }
      }
    }

    // A value edit: the row's server errors no longer describe what is typed now.
    changed(row, element) {
      if (row.errors.length) {
        row.errors = [];
        element.classList.remove("fb-invalid");
        const note = element.querySelector(":scope > .fb-row-errors");
        if (note) {
          note.remove();
        }
      }
      this.write();
    }

    // Sensible defaults when a field is mapped: the type and choices of the prospect field.
    applyTarget(row, value) {
      const previous = this.targetByValue.get(row.target);
      row.target = value;
      const target = this.targetByValue.get(value);
      if (!target) {
        return;
      }
      if (!row.label || (previous && row.label === previous.label)) {
        row.label = target.label;
      }
      if (target.field_type) {
        row.field_type = target.field_type;
      }
      if (Array.isArray(target.choices) && target.choices.length && !row.choicesText.trim()) {
        row.choicesText = target.choices.join("\n");
      }
      if (value === "email") {
        row.required = true;
      }
    }

    move(from, to) {
      if (to < 0 || to >= this.rows.length || from === to) {
        return;
      }
      const [moved] = this.rows.splice(from, 1);
      this.rows.splice(to, 0, moved);
    }

    // --- drawing -----------------------------------------------------------------------------

    render() {
      this.list.replaceChildren(...this.rows.map((row, index) => this.renderRow(row, index)));
      if (!this.rows.length) {
        this.list.append(h("li", { class: "fb-empty", text: this.t("empty") }));
      }
      this.renderAdder();
    }

    renderAdder() {
      const atLimit = this.rows.length >= this.maxFields;
      const used = new Set(this.rows.map((row) => row.target).filter(Boolean));
      const select = h("select", {
        "aria-label": this.t("add_label"),
        "data-focus": "add-target",
        "data-part": "add-target",
        disabled: atLimit,
      });
      select.append(h("option", { value: "", text: this.t("not_mapped") }));
      this.appendTargetOptions(select, used, "");
      const button = h("button", {
        type: "button",
        class: "button",
        "data-action": "add-field",
        text: this.t("add"),
        disabled: atLimit,
      });
      button.addEventListener("click", () => {
        const row = this.rowFrom({}, []);
        this.applyTarget(row, select.value);
        if (!row.label) {
          row.label = "";
        }
        this.edit(() => this.rows.push(row), `${row.key}:label`);
      });
      const parts = [h("label", { class: "fb-add-label", text: this.t("add_label") }), select, button];
      if (atLimit) {
        parts.push(
          h("span", { class: "muted", text: format(this.t("limit"), { count: this.maxFields }) }),
        );
      }
      this.adder.replaceChildren(...parts);
    }

    appendTargetOptions(select, used, current) {
      const groups = new Map();
      for (const target of this.targets) {
        const label = target.group_label || "";
        if (!groups.has(label)) {
          groups.set(label, h("optgroup", { label }));
        }
        groups.get(label).append(
          h("option", {
            value: target.value,
            text: target.label,
            disabled: used.has(target.value) && target.value !== current,
          }),
        );
      }
      for (const group of groups.values()) {
        select.append(group);
      }
    }

    renderRow(row, index) {
      const element = h("li", {
        class: "fb-row",
        "data-index": String(index),
        "data-key": row.key,
        "data-testid": "builder-row",
      });
      const head = h("div", { class: "fb-row-head" });
      const handle = h("span", {
        class: "fb-handle",
        draggable: "true",
        title: this.t("drag"),
        "aria-hidden": "true",
        text: "⋮⋮",
      });
      handle.addEventListener("dragstart", (event) => {
        this.dragFrom = index;
        event.dataTransfer.effectAllowed = "move";
        event.dataTransfer.setData("text/plain", row.key);
        event.dataTransfer.setDragImage(element, 10, 10);
      });
      handle.addEventListener("dragend", () => {
        this.dragFrom = null;
      });
      element.addEventListener("dragover", (event) => {
        if (this.dragFrom !== null) {
          event.preventDefault();
          element.classList.add("fb-drop");
        }
      });
      element.addEventListener("dragleave", () => element.classList.remove("fb-drop"));
      element.addEventListener("drop", (event) => {
        event.preventDefault();
        const from = this.dragFrom;
        this.dragFrom = null;
        if (from !== null) {
          this.edit(() => this.move(from, index));
        }
      });
      head.append(
        handle,
        h("strong", { class: "fb-number", text: `${index + 1}.` }),
        h("span", { class: "fb-title", text: row.label || this.t("untitled") }),
      );
      const typeLabel = (this.types.find(([value]) => value === row.field_type) || [])[1];
      if (typeLabel) {
        head.append(h("span", { class: "badge", text: typeLabel }));
      }
      const controls = h("span", { class: "fb-controls" });
      const moveButton = (offset, label, action) => {
        const button = h("button", {
          type: "button",
          class: "fb-icon",
          "data-action": action,
          "data-focus": `${row.key}:${action}`,
          "aria-label": `${label}: ${row.label || this.t("untitled")}`,
          title: label,
          text: offset < 0 ? "↑" : "↓",
          disabled: index + offset < 0 || index + offset >= this.rows.length,
        });
        button.addEventListener("click", () =>
          this.edit(() => this.move(index, index + offset), `${row.key}:${action}`),
        );
        return button;
      };
      const remove = h("button", {
        type: "button",
        class: "fb-icon fb-remove",
        "data-action": "remove-field",
        "aria-label": `${this.t("remove")}: ${row.label || this.t("untitled")}`,
        title: this.t("remove"),
        text: "×",
      });
      remove.addEventListener("click", () =>
        this.edit(() => {
          this.rows.splice(index, 1);
          for (const other of this.rows) {
            if (other.show_if_known === `field:${row.key}`) {
              other.show_if_known = "";
            }
          }
        }, "add-target"),
      );
      controls.append(
        moveButton(-1, this.t("move_up"), "move-up"),
        moveButton(1, this.t("move_down"), "move-down"),
        remove,
      );
      head.append(controls);
      element.append(head);

      const grid = h("div", { class: "fb-grid" });
      const id = (name) => `${this.root.id || "form-builder"}-${row.key}-${name}`;
      const field = (name, labelText, control, wide) => {
        const wrapper = h(
          "div",
          { class: wide ? "fb-field fb-wide" : "fb-field" },
          h("label", { for: id(name), text: labelText }),
          control,
        );
        return wrapper;
      };
      const input = (name, value, attributes) => {
        const control = h("input", {
          type: "text",
          id: id(name),
          "data-focus": `${row.key}:${name}`,
          "data-field": name,
          ...(attributes || {}),
        });
        control.value = value;
        control.addEventListener("input", () => {
          row[name] = control.value;
          if (name === "label") {
            element.querySelector(".fb-title").textContent = control.value || this.t("untitled");
          }
          this.changed(row, element);
        });
        return control;
      };

      // Mapping and type: structural (they change which settings show).
      const used = new Set(this.rows.map((other) => other.target).filter(Boolean));
      const target = h("select", { id: id("target"), "data-field": "target" });
      target.append(h("option", { value: "", text: this.t("not_mapped") }));
      this.appendTargetOptions(target, used, row.target);
      if (row.target && !this.targetByValue.has(row.target)) {
        target.append(
          h("option", { value: row.target, text: format(this.t("unknown"), { value: row.target }) }),
        );
      }
      target.value = row.target;
      target.addEventListener("change", () =>
        this.edit(() => this.applyTarget(row, target.value), `${row.key}:target`),
      );
      target.setAttribute("data-focus", `${row.key}:target`);
      grid.append(field("target", this.t("maps_to"), target));

      const type = h("select", {
        id: id("field_type"),
        "data-field": "field_type",
        "data-focus": `${row.key}:field_type`,
      });
      for (const [value, label] of this.types) {
        type.append(h("option", { value, text: label }));
      }
      type.value = row.field_type;
      type.addEventListener("change", () =>
        this.edit(() => {
          row.field_type = type.value;
        }, `${row.key}:field_type`),
      );
      grid.append(field("field_type", this.t("type"), type));

      grid.append(field("label", this.t("label"), input("label", row.label, { maxlength: 200 }), true));

      const required = h("input", {
        type: "checkbox",
        id: id("required"),
        "data-field": "required",
        disabled: row.field_type === "hidden",
      });
      required.checked = row.required;
      required.addEventListener("change", () => {
        row.required = required.checked;
        this.changed(row, element);
      });
      grid.append(
        h("div", { class: "fb-field fb-check fb-wide" }, required, h("label", { for: id("required"), text: this.t("required") })),
      );

      if (row.field_type !== "hidden") {
        grid.append(field("help_text", this.t("help_text"), input("help_text", row.help_text, { maxlength: 500 })));
        grid.append(
          field("error_message", this.t("error_message"), input("error_message", row.error_message, { maxlength: 300 })),
        );
      }
      if (row.field_type !== "consent") {
        grid.append(
          field("default_value", this.t("default_value"), input("default_value", row.default_value, { maxlength: 500 })),
        );
      }
      if (CHOICE_TYPES.includes(row.field_type)) {
        const choices = h("textarea", {
          id: id("choices"),
          rows: 4,
          "data-field": "choices",
          "data-focus": `${row.key}:choices`,
          "aria-describedby": id("choices-help"),
        });
        choices.value = row.choicesText;
        choices.addEventListener("input", () => {
          row.choicesText = choices.value;
          this.changed(row, element);
        });
        const wrapper = field("choices", this.t("choices"), choices, true);
        wrapper.append(h("p", { class: "help", id: id("choices-help"), text: this.t("choices_help") }));
        grid.append(wrapper);
      }
      if (row.field_type === "consent") {
        const wording = h("textarea", {
          id: id("consent_wording"),
          rows: 3,
          "data-field": "consent_wording",
          "data-focus": `${row.key}:consent_wording`,
        });
        wording.value = row.consent_wording;
        wording.addEventListener("input", () => {
          row.consent_wording = wording.value;
          this.changed(row, element);
        });
        const wrapper = field("consent_wording", this.t("consent_wording"), wording, true);
        wrapper.append(h("p", { class: "help", text: this.t("consent_help") }));
        grid.append(wrapper);
      }

      if (row.field_type !== "hidden" && row.field_type !== "consent") {
        // Progressive profiling: ask this field only once another is known.
        const rule = h("select", {
          id: id("show_if_known"),
          "data-field": "show_if_known",
          "data-focus": `${row.key}:show_if_known`,
        });
        rule.append(h("option", { value: "", text: this.t("always") }));
        const onForm = h("optgroup", { label: this.t("fields_on_form") });
        for (const other of this.rows) {
          if (other !== row && other.field_type !== "consent") {
            onForm.append(
              h("option", { value: `field:${other.key}`, text: other.label || this.t("untitled") }),
            );
          }
        }
        rule.append(onForm);
        const prospectFields = h("optgroup", { label: this.t("prospect_fields") });
        for (const option of this.targets) {
          if (!option.value.startsWith(CUSTOM_PREFIX)) {
            prospectFields.append(h("option", { value: `prospect:${option.value}`, text: option.label }));
          }
        }
        rule.append(prospectFields);
        if (row.show_if_known && !Array.from(rule.options).some((o) => o.value === row.show_if_known)) {
          rule.append(h("option", { value: row.show_if_known, text: format(this.t("unknown"), { value: row.show_if_known }) }));
        }
        rule.value = row.show_if_known;
        rule.addEventListener("change", () => {
          row.show_if_known = rule.value;
          this.changed(row, element);
        });
        const wrapper = field("show_if_known", this.t("show_if_known"), rule, true);
        grid.append(wrapper);

        if (row.target) {
          const skip = h("input", { type: "checkbox", id: id("skip_if_known"), "data-field": "skip_if_known" });
          skip.checked = row.skip_if_known;
          skip.addEventListener("change", () => {
            row.skip_if_known = skip.checked;
            this.changed(row, element);
          });
          grid.append(
            h(
              "div",
              { class: "fb-field fb-check fb-wide" },
              skip,
              h("label", { for: id("skip_if_known"), text: this.t("skip_if_known") }),
            ),
          );
        }
      }
      element.append(grid);

      if (row.errors.length) {
        element.classList.add("fb-invalid");
        element.append(
          h("div", { class: "fb-row-errors", role: "alert" }, row.errors.map((message) => h("p", { class: "error", text: message }))),
        );
      }
      return element;
    }
  }

  // --- copy buttons: <button data-copy-from="ID"> copies that element's value or text ----------

  function copyFrom(button) {
    const source = document.getElementById(button.getAttribute("data-copy-from"));
    if (!source) {
      return;
    }
    const value = "value" in source ? source.value : source.textContent;
    const original = button.textContent;
    const done = () => {
      button.textContent = button.getAttribute("data-copied-label") || original;
      setTimeout(() => {
        button.textContent = original;
      }, 2000);
    };
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(value).then(done);
    } else if (typeof source.select === "function") {
      source.select();
      document.execCommand("copy");
      done();
    }
  }

  // --- merge-field menu: <select data-merge-insert="TEXTAREA_ID"> inserts the chosen tag -------

  function insertMergeField(select) {
    const target = document.getElementById(select.getAttribute("data-merge-insert"));
    const tag = select.value;
    if (!target || !tag) {
      return;
    }
    const start = target.selectionStart ?? target.value.length;
    const end = target.selectionEnd ?? target.value.length;
    target.value = target.value.slice(0, start) + tag + target.value.slice(end);
    target.focus();
    target.setSelectionRange(start + tag.length, start + tag.length);
    select.value = "";
  }

  function start() {
    document.querySelectorAll("[data-form-builder]").forEach((root) => new FormBuilder(root));
    document.addEventListener("click", (event) => {
      const button = event.target.closest("[data-copy-from]");
      if (button) {
        copyFrom(button);
      }
    });
    document.querySelectorAll("select[data-merge-insert]").forEach((select) => {
      select.addEventListener("change", () => insertMergeField(select));
    });
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
