/*
 * The criteria builder: a visual editor for the criteria language of prospects/criteria/engine.py
 * (match all / any, nested groups, conditions on subjects), with a live count of the matching
 * prospects.
 *
 * Markup (templates/includes/criteria_builder.html renders it):
 *   <div data-criteria-builder data-preview-url="…" data-catalogue="ID" data-initial="ID" data-i18n="ID">
 *     <script type="application/json" id="ID">…</script>   (catalogue, initial criteria, strings)
 *     <output data-criteria-count aria-live="polite"></output>
 *     <div data-criteria-tree></div>
 *     <textarea name="…" hidden data-criteria-output></textarea>
 *   </div>
 *
 * No dependencies, no eval, no inline handlers: it runs under a strict Content-Security-Policy.
 * The state is a plain criteria document; structural edits (subject, field, operator, add,
 * remove) redraw the tree from it, typing only updates the document, so focus and the caret stay
 * where the user is. Every edit writes the JSON into the textarea (a plain form POST submits it)
 * and, debounced, asks data-preview-url how many prospects match.
 */
(() => {
  "use strict";

  if (window.mappCriteriaBuilder) {
    return; // the include appears twice on this page: one copy of the script is enough
  }

  const MAX_DEPTH = 6; // prospects/criteria/engine.py MAX_DEPTH
  const PREVIEW_DELAY_MS = 300;
  const NONE = "none";
  const TWO = "two";
  const MANY = "many";
  const DAYS = "days";
  // tracking/criteria.py: "did / did not do TYPE (on OBJECT) at least COUNT times within the last
  // DAYS days". Its condition has no "value" but these keys of its own.
  const ACTIVITY = "activity";
  const ACTIVITY_DEFAULT_COUNT = 1; // the server's default when "count" is missing
  // Server-derived keys of a validated custom-field condition; the server recomputes them.
  const DERIVED_KEYS = ["field_id", "field_type"];
  const VALUE_SEPARATORS = /[,、，]/;

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

  // The engine's own test: an object with "conditions" and no "subject" is a group.
  function isGroup(item) {
    return isObject(item) && "conditions" in item && !("subject" in item);
  }

  function isBlank(value) {
    if (value === null || value === undefined) {
      return true;
    }
    if (typeof value === "string") {
      return value.trim() === "";
    }
    return Array.isArray(value) && value.length === 0;
  }

  function joinPath(path, part) {
    return path ? `${path}.${part}` : part;
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

  // Full-width digits (１００) and thousands separators are what people type in Japan; the server
  // normalises the same way (NFKC). Anything that is not a number is sent as typed so the server
  // can say what is wrong with it.
  function parseNumber(raw) {
    const text = String(raw).normalize("NFKC").replace(/,/g, "").trim();
    if (/^[-+]?(\d+\.?\d*|\.\d+)$/.test(text)) {
      const number = Number(text);
      if (Number.isFinite(number) && Math.abs(number) <= Number.MAX_SAFE_INTEGER) {
        return number;
      }
    }
    return raw;
  }

  function toValue(type, raw) {
    if (type === "number" || type === DAYS) {
      return parseNumber(raw);
    }
    if (type === "ordinal" || type === "id") {
      return /^\d+$/.test(raw) ? Number(raw) : raw;
    }
    return raw;
  }

  function display(value) {
    return value === null || value === undefined ? "" : String(value);
  }

  function emptyValue(arity) {
    if (arity === NONE) {
      return null;
    }
    if (arity === TWO) {
      return ["", ""];
    }
    return arity === MANY ? [] : "";
  }

  function convertValue(value, fromArity, toArity) {
    if (fromArity === toArity) {
      return value;
    }
    if (toArity === MANY && fromArity !== TWO && !isBlank(value) && !Array.isArray(value)) {
      return [value];
    }
    if (fromArity === MANY && Array.isArray(value) && value.length && toArity !== TWO) {
      return toArity === NONE ? null : value[0];
    }
    return emptyValue(toArity);
  }

  function csrfToken(root) {
    const match = document.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/);
    if (match) {
      return decodeURIComponent(match[1]);
    }
    const headers = document.body && document.body.getAttribute("hx-headers");
    if (headers) {
      try {
        const token = JSON.parse(headers)["X-CSRFToken"];
        if (token) {
          return token;
        }
      } catch (error) {
        // not JSON: fall through to the form's hidden input
      }
    }
    const form = root.closest("form");
    const input = form && form.querySelector("input[name=csrfmiddlewaretoken]");
    return input ? input.value : "";
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

  class CriteriaBuilder {
    constructor(root) {
      this.root = root;
      const catalogue = readJson(root.dataset.catalogue) || {};
      this.catalogue = {
        subjects: Array.isArray(catalogue.subjects) ? catalogue.subjects : [],
        operators: isObject(catalogue.operators) ? catalogue.operators : {},
      };
      this.subjects = new Map(this.catalogue.subjects.map((subject) => [subject.key, subject]));
      this.text = readJson(root.dataset.i18n) || {};
      this.language = document.documentElement.lang || undefined;
      this.previewUrl = root.dataset.previewUrl || "";
      this.tree = root.querySelector("[data-criteria-tree]");
      this.count = root.querySelector("[data-criteria-count]");
      this.output = root.querySelector("textarea[data-criteria-output]");
      this.nodes = new WeakMap(); // criteria object → its element, to mark the one in error
      this.timer = null;
      this.request = null;
      this.sequence = 0;

      let initial = readJson(root.dataset.initial);
      if (typeof initial === "string") {
        // a bound form hands back the posted text
        try {
          initial = JSON.parse(initial);
        } catch (error) {
          initial = null;
        }
      }
      this.state = this.importGroup(isObject(initial) ? initial : {});
      this.render();
      this.changed({ immediately: true });
    }

    t(key) {
      return key in this.text ? this.text[key] : key;
    }

    // --- the document --------------------------------------------------------------------------

    importGroup(raw) {
      const group = { match: raw.match === "any" ? "any" : "all", conditions: [] };
      for (const item of Array.isArray(raw.conditions) ? raw.conditions : []) {
        if (isGroup(item)) {
          group.conditions.push(this.importGroup(item));
        } else if (isObject(item)) {
          const condition = { ...item };
          for (const key of DERIVED_KEYS) {
            delete condition[key];
          }
          group.conditions.push(condition);
        }
      }
      return group;
    }

    exportGroup(group) {
      return {
        match: group.match,
        conditions: group.conditions.map((item) =>
          isGroup(item) ? this.exportGroup(item) : this.exportCondition(item),
        ),
      };
    }

    exportCondition(condition) {
      if (this.isActivity(condition)) {
        return this.exportActivity(condition);
      }
      const subject = this.subjectOf(condition);
      const exported = { subject: condition.subject };
      if (!subject || subject.fields) {
        if ("field" in condition) {
          exported.field = condition.field;
        }
      }
      exported.operator = condition.operator;
      const operator = this.operatorOf(condition);
      exported.value = operator && operator.arity === NONE ? null : (condition.value ?? null);
      // Keys this builder does not edit (a subject from another app may have more) pass through.
      for (const [key, value] of Object.entries(condition)) {
        if (!(key in exported) && key !== "field") {
          exported[key] = value;
        }
      }
      return exported;
    }

    // Written as the server's validate() returns it (every key, "object": "" and "days": null
    // included), so a saved condition renders back and posts again unchanged. An empty count
    // is the default, an empty days "any time".
    exportActivity(condition) {
      const exported = {
        subject: condition.subject,
        operator: condition.operator,
        activity_type: condition.activity_type ?? "",
        object: condition.object ?? "",
        count: isBlank(condition.count) ? ACTIVITY_DEFAULT_COUNT : condition.count,
        days: isBlank(condition.days) ? null : condition.days,
      };
      for (const [key, value] of Object.entries(condition)) {
        if (!(key in exported) && key !== "value") {
          exported[key] = value;
        }
      }
      return exported;
    }

    newCondition() {
      const condition = { subject: "", operator: "", value: "" };
      const first = this.catalogue.subjects[0];
      if (first) {
        this.setSubject(condition, first.key);
      }
      return condition;
    }

    subjectOf(condition) {
      return this.subjects.get(condition.subject);
    }

    fieldOf(condition) {
      const subject = this.subjectOf(condition);
      if (!subject || !Array.isArray(subject.fields)) {
        return undefined;
      }
      return subject.fields.find((field) => field.key === condition.field);
    }

    isActivity(condition) {
      const subject = this.subjectOf(condition);
      return Boolean(
        subject &&
          Array.isArray(subject.operators) &&
          subject.operators.some((operator) => operator.arity === ACTIVITY),
      );
    }

    operatorsOf(condition) {
      const subject = this.subjectOf(condition);
      if (!subject) {
        return [];
      }
      if (Array.isArray(subject.fields)) {
        const field = this.fieldOf(condition);
        return field ? this.catalogue.operators[field.type] || [] : [];
      }
      return Array.isArray(subject.operators) ? subject.operators : [];
    }

    operatorOf(condition) {
      return this.operatorsOf(condition).find((operator) => operator.key === condition.operator);
    }

    // What the value of this condition is: its arity, type and choices (null: typed freely).
    valueSpec(condition) {
      const operator = this.operatorOf(condition);
      if (!operator) {
        return null;
      }
      const field = this.fieldOf(condition);
      if (field) {
        const choices = Array.isArray(field.choices) && field.choices.length ? field.choices : null;
        return { arity: operator.arity, type: field.type, choices };
      }
      const subject = this.subjectOf(condition);
      if (subject && Array.isArray(subject.values)) {
        return { arity: operator.arity, type: "id", choices: subject.values };
      }
      return { arity: operator.arity, type: "text", choices: null };
    }

    setSubject(condition, key) {
      for (const name of Object.keys(condition)) {
        delete condition[name];
      }
      condition.subject = key;
      const subject = this.subjects.get(key);
      if (subject && Array.isArray(subject.fields)) {
        condition.field = "";
        condition.operator = "";
        condition.value = "";
        return;
      }
      const first = subject && Array.isArray(subject.operators) ? subject.operators[0] : null;
      condition.operator = first ? first.key : "";
      if (this.isActivity(condition)) {
        condition.activity_type = "";
        condition.object = "";
        condition.count = ACTIVITY_DEFAULT_COUNT;
        condition.days = "";
        return;
      }
      condition.value = emptyValue(first ? first.arity : "one");
    }

    setField(condition, key) {
      condition.field = key;
      const first = this.operatorsOf(condition)[0];
      condition.operator = first ? first.key : "";
      condition.value = emptyValue(first ? first.arity : "one");
    }

    setOperator(condition, key) {
      if (this.isActivity(condition)) {
        condition.operator = key; // did ↔ did not: the rest of the sentence stays
        return;
      }
      const before = this.operatorOf(condition);
      condition.operator = key;
      const after = this.operatorOf(condition);
      if (before && after) {
        condition.value = convertValue(condition.value, before.arity, after.arity);
      } else {
        condition.value = emptyValue(after ? after.arity : "one");
      }
    }

    // Whether the user has yet to choose or type something. Incomplete criteria are not sent,
    // so nobody sees "expected a number" while still typing. What the builder does not know
    // (a subject or field missing from the catalogue) counts as complete: the server judges it.
    isComplete(item) {
      if (isGroup(item)) {
        return item.conditions.every((child) => this.isComplete(child));
      }
      if (!item.subject) {
        return false;
      }
      const subject = this.subjectOf(item);
      if (!subject) {
        return true;
      }
      if (Array.isArray(subject.fields)) {
        if (!item.field) {
          return false;
        }
        if (!this.fieldOf(item)) {
          return true;
        }
      }
      if (!item.operator) {
        return false;
      }
      if (this.isActivity(item)) {
        // Object, count and days have defaults; a wrong one is for the server to name.
        return !isBlank(item.activity_type);
      }
      const spec = this.valueSpec(item);
      if (!spec) {
        return true;
      }
      const value = item.value;
      if (spec.arity === NONE) {
        return true;
      }
      if (spec.arity === TWO || spec.arity === MANY) {
        return (
          Array.isArray(value) &&
          (spec.arity === MANY ? value.length > 0 : value.length === 2) &&
          !value.some(isBlank)
        );
      }
      return !isBlank(value) && !Array.isArray(value);
    }

    // --- drawing -------------------------------------------------------------------------------

    render() {
      const active = document.activeElement;
      const focusKey = active && this.root.contains(active) ? active.dataset.focus : null;
      this.tree.replaceChildren(this.renderGroup(this.state, 0, null, ""));
      if (focusKey) {
        this.focus(focusKey);
      }
    }

    focus(key) {
      const element = this.tree.querySelector(`[data-focus="${CSS.escape(key)}"]`);
      if (element) {
        element.focus();
      }
    }

    // Structural edits redraw the tree, then record and preview the new document.
    edit(change, focusKey) {
      change();
      this.render();
      if (focusKey) {
        this.focus(focusKey);
      }
      this.changed();
    }

    select(options, current, { part, label, placeholder, focusKey }) {
      const element = h("select", {
        class: "cb-select",
        "data-part": part,
        "aria-label": label,
        "data-focus": focusKey,
      });
      if (placeholder) {
        element.append(h("option", { value: "", text: placeholder }));
      }
      const wanted = display(current);
      let found = wanted === "" && Boolean(placeholder);
      for (const [value, text] of options) {
        element.append(h("option", { value: String(value), text: String(text) }));
        found = found || String(value) === wanted;
      }
      if (!found) {
        // Chosen once, gone from the catalogue since (a deleted list, a renamed field): keep it
        // visible rather than silently changing the criteria.
        element.append(h("option", { value: wanted, text: format(this.t("unknown"), { value: wanted }) }));
      }
      element.value = wanted;
      return element;
    }

    button(text, { action, label, kind }, onClick) {
      const element = h("button", {
        type: "button",
        class: kind === "remove" ? "cb-remove" : "button cb-add",
        "data-action": action,
        "aria-label": label,
        title: label,
        text,
      });
      element.addEventListener("click", onClick);
      return element;
    }

    renderGroup(group, depth, parent, path) {
      const uid = uidOf(group);
      const element = h("div", {
        class: `cb-group cb-depth-${depth}`,
        role: "group",
        "aria-label": this.t(parent ? "subgroup" : "group"),
        "data-path": path,
      });
      this.nodes.set(group, element);

      const match = this.select(
        [
          ["all", this.t("match_all")],
          ["any", this.t("match_any")],
        ],
        group.match,
        { part: "match", label: this.t("match_label"), focusKey: `${uid}:match` },
      );
      match.addEventListener("change", () =>
        this.edit(() => {
          group.match = match.value === "any" ? "any" : "all";
        }),
      );
      const head = h("div", { class: "cb-group-head" }, match);
      if (parent) {
        head.append(
          this.button(
            "×",
            { action: "remove-group", label: this.t("remove_group"), kind: "remove" },
            () =>
              this.edit(() => {
                parent.conditions.splice(parent.conditions.indexOf(group), 1);
              }),
          ),
        );
      }
      head.append(h("p", { class: "cb-error", hidden: true }));

      const items = h("ol", { class: "cb-items" });
      group.conditions.forEach((item, index) => {
        const itemPath = joinPath(path, `conditions.${index}`);
        const row = h("li", { class: "cb-item" });
        if (index > 0) {
          row.append(
            h("span", {
              class: `cb-join cb-join-${group.match}`,
              text: this.t(group.match === "any" ? "or" : "and"),
            }),
          );
        }
        row.append(
          isGroup(item)
            ? this.renderGroup(item, depth + 1, group, itemPath)
            : this.renderCondition(item, group, itemPath),
        );
        items.append(row);
      });
      if (!group.conditions.length) {
        items.append(
          h("li", { class: "cb-empty", text: this.t(parent ? "empty_subgroup" : "empty_group") }),
        );
      }

      const actions = h(
        "div",
        { class: "cb-group-actions" },
        this.button(this.t("add_condition"), { action: "add-condition" }, () => {
          const condition = this.newCondition();
          const first = condition.field === "" ? "field" : "operator";
          this.edit(() => group.conditions.push(condition), `${uidOf(condition)}:${first}`);
        }),
      );
      if (depth < MAX_DEPTH) {
        actions.append(
          this.button(this.t("add_group"), { action: "add-group" }, () => {
            const condition = this.newCondition();
            // Nesting exists to mix AND and OR: a new group starts with the other one.
            const subgroup = {
              match: group.match === "all" ? "any" : "all",
              conditions: [condition],
            };
            this.edit(() => group.conditions.push(subgroup), `${uidOf(condition)}:field`);
          }),
        );
      }
      element.append(head, items, actions);
      return element;
    }

    renderCondition(condition, group, path) {
      const uid = uidOf(condition);
      const row = h("div", { class: "cb-condition", "data-path": path });
      this.nodes.set(condition, row);

      const subjectSelect = this.select(
        this.catalogue.subjects.map((subject) => [subject.key, subject.label]),
        condition.subject,
        {
          part: "subject",
          label: this.t("subject"),
          placeholder: this.t("choose_subject"),
          focusKey: `${uid}:subject`,
        },
      );
      subjectSelect.addEventListener("change", () =>
        this.edit(() => this.setSubject(condition, subjectSelect.value)),
      );
      row.append(subjectSelect);

      const subject = this.subjectOf(condition);
      if (subject && Array.isArray(subject.fields)) {
        const fieldSelect = this.select(
          subject.fields.map((field) => [field.key, field.label]),
          condition.field,
          {
            part: "field",
            label: this.t("field"),
            placeholder: this.t(subject.fields.length ? "choose_field" : "no_fields"),
            focusKey: `${uid}:field`,
          },
        );
        fieldSelect.addEventListener("change", () =>
          this.edit(() => this.setField(condition, fieldSelect.value)),
        );
        row.append(fieldSelect);
      }

      const operators = this.operatorsOf(condition);
      let operatorSelect = null;
      if (operators.length) {
        operatorSelect = this.select(
          operators.map((operator) => [operator.key, operator.label]),
          condition.operator,
          { part: "operator", label: this.t("operator"), focusKey: `${uid}:operator` },
        );
        operatorSelect.addEventListener("change", () =>
          this.edit(() => this.setOperator(condition, operatorSelect.value)),
        );
      }

      if (this.isActivity(condition)) {
        row.append(...this.renderActivity(condition, operatorSelect));
      } else {
        if (operatorSelect) {
          row.append(operatorSelect);
        }
        const spec = this.valueSpec(condition);
        if (spec && spec.arity !== NONE) {
          row.append(this.renderValue(condition, spec));
        }
      }

      row.append(
        this.button(
          "×",
          { action: "remove-condition", label: this.t("remove_condition"), kind: "remove" },
          () =>
            this.edit(() => {
              group.conditions.splice(group.conditions.indexOf(condition), 1);
            }),
        ),
        h("p", { class: "cb-error", hidden: true }),
      );
      return row;
    }

    // "did [Page view] on [pricing] at least [3] times in the last [30] days", as one
    // translatable sentence whose {placeholders} are the controls: a language puts them in its
    // own order (過去 [30] 日間に [3] 回以上). Each control is a direct child of the row with a
    // data-part named like the key, so a server error at conditions.N.count marks its input.
    renderActivity(condition, operatorSelect) {
      const uid = uidOf(condition);
      const subject = this.subjectOf(condition);
      const types = Array.isArray(subject.activity_types) ? subject.activity_types : [];
      const typeSelect = this.select(types, condition.activity_type, {
        part: "activity_type",
        label: this.t("activity_type"),
        placeholder: this.t("choose_activity_type"),
        focusKey: `${uid}:activity_type`,
      });
      typeSelect.addEventListener("change", () => {
        condition.activity_type = typeSelect.value;
        this.changed();
      });
      const object = h("input", {
        type: "text",
        class: "cb-input cb-object",
        "data-part": "object",
        "data-focus": `${uid}:object`,
        "aria-label": this.t("activity_object"),
        placeholder: this.t("activity_object_placeholder"),
        value: display(condition.object),
      });
      object.addEventListener("input", () => {
        condition.object = object.value;
        this.changed();
      });
      const controls = {
        operator: operatorSelect,
        activity_type: typeSelect,
        object,
        count: this.wholeNumberInput(condition, "count", {
          label: this.t("activity_count"),
          placeholder: String(ACTIVITY_DEFAULT_COUNT),
        }),
        days: this.wholeNumberInput(condition, "days", {
          label: this.t("activity_days"),
          placeholder: this.t("activity_any_time"),
        }),
      };
      const parts = [];
      const placed = new Set();
      for (const piece of String(this.t("activity_sentence")).split(/(\{\w+\})/)) {
        const key = (/^\{(\w+)\}$/.exec(piece) || [])[1];
        if (key && key in controls && !placed.has(key)) {
          placed.add(key);
          parts.push(controls[key]);
        } else if (piece.trim()) {
          parts.push(h("span", { class: "cb-suffix", text: piece.trim() }));
        }
      }
      // A translation that lost a placeholder still shows every control.
      for (const [key, control] of Object.entries(controls)) {
        if (!placed.has(key)) {
          parts.push(control);
        }
      }
      return parts.filter(Boolean);
    }

    // Count and days: typed as text (full-width digits are numbers too), stored as a number
    // when they are one and as typed otherwise, so the server can say what is wrong.
    wholeNumberInput(condition, key, { label, placeholder }) {
      const element = h("input", {
        type: "text",
        inputmode: "numeric",
        class: `cb-input cb-number cb-activity-${key}`,
        "data-part": key,
        "data-focus": `${uidOf(condition)}:${key}`,
        "aria-label": label,
        title: label,
        placeholder,
        value: display(condition[key]),
      });
      element.addEventListener("input", () => {
        condition[key] = isBlank(element.value) ? "" : parseNumber(element.value);
        this.changed();
      });
      return element;
    }

    renderValue(condition, spec) {
      const wrapper = h("span", { class: "cb-value", "data-part": "value" });
      if (spec.arity === TWO) {
        if (!Array.isArray(condition.value) || condition.value.length !== 2) {
          condition.value = ["", ""];
        }
        wrapper.append(
          this.singleInput(condition, spec, 0),
          h("span", { class: "cb-suffix", text: this.t("between_and") }),
          this.singleInput(condition, spec, 1),
        );
      } else if (spec.arity === MANY) {
        if (!Array.isArray(condition.value)) {
          condition.value = isBlank(condition.value) ? [] : [condition.value];
        }
        wrapper.append(
          spec.choices ? this.choiceToggles(condition, spec) : this.chipInput(condition, spec),
        );
      } else if (spec.arity === DAYS) {
        wrapper.append(
          this.singleInput(condition, { ...spec, type: DAYS, choices: null }, null),
          h("span", { class: "cb-suffix", text: this.t("days") }),
        );
      } else {
        wrapper.append(this.singleInput(condition, spec, null));
      }
      return wrapper;
    }

    singleInput(condition, spec, index) {
      const uid = uidOf(condition);
      const focusKey = `${uid}:value${index === null ? "" : `:${index}`}`;
      const current = index === null ? condition.value : condition.value[index];
      const label = index === null ? this.t("value") : this.t(index === 0 ? "value_from" : "value_to");
      const store = (value) => {
        if (index === null) {
          condition.value = value;
        } else {
          condition.value[index] = value;
        }
        this.changed();
      };
      if (spec.choices) {
        const element = this.select(spec.choices, current, {
          part: "value-input",
          label,
          placeholder: this.t("choose_value"),
          focusKey,
        });
        element.addEventListener("change", () =>
          store(element.value === "" ? "" : toValue(spec.type, element.value)),
        );
        return element;
      }
      const attributes = {
        type: "text",
        class: "cb-input",
        "aria-label": label,
        "data-focus": focusKey,
        "data-part": "value-input",
        value: display(current),
        placeholder: this.t("value_placeholder"),
      };
      if (spec.type === "number") {
        // Not type=number: it refuses full-width digits (１００) and hides what was typed.
        attributes.inputmode = "decimal";
        attributes.class = "cb-input cb-number";
      } else if (spec.type === DAYS) {
        attributes.inputmode = "numeric";
        attributes.class = "cb-input cb-number cb-days";
      } else if (spec.type === "date") {
        attributes.type = "date";
        attributes.class = "cb-input cb-date";
        attributes.placeholder = null;
      }
      const element = h("input", attributes);
      element.addEventListener("input", () => store(toValue(spec.type, element.value)));
      return element;
    }

    choiceToggles(condition, spec) {
      const uid = uidOf(condition);
      const chosen = new Set(condition.value.map(String));
      const box = h("span", { class: "cb-options", role: "group", "aria-label": this.t("value") });
      const known = new Set(spec.choices.map(([value]) => String(value)));
      const options = [
        ...spec.choices,
        ...[...chosen]
          .filter((value) => !known.has(value))
          .map((value) => [value, format(this.t("unknown"), { value })]),
      ];
      for (const [value, text] of options) {
        const checkbox = h("input", {
          type: "checkbox",
          value: String(value),
          "data-focus": `${uid}:option:${value}`,
        });
        checkbox.checked = chosen.has(String(value));
        checkbox.addEventListener("change", () => {
          condition.value = [...box.querySelectorAll("input:checked")].map((input) =>
            toValue(spec.type, input.value),
          );
          this.changed();
        });
        box.append(h("label", { class: "cb-option" }, checkbox, h("span", { text: String(text) })));
      }
      return box;
    }

    // Free values ("is one of" on a text field, tags): chips, added with Enter or a comma
    // (、 too), removed with × or Backspace. Redrawn in place so a click elsewhere is not lost.
    chipInput(condition, spec) {
      const uid = uidOf(condition);
      const input = h("input", {
        type: "text",
        class: "cb-chip-input",
        "aria-label": this.t("value"),
        placeholder: this.t("add_value"),
        "data-focus": `${uid}:chips`,
        "data-part": "value-input",
      });
      const box = h("span", { class: "cb-chips" }, input);
      const draw = () => {
        const chips = condition.value.map((value, index) => {
          const remove = h("button", {
            type: "button",
            class: "cb-chip-remove",
            "aria-label": format(this.t("remove_value"), { value }),
            text: "×",
          });
          remove.addEventListener("click", () => {
            condition.value.splice(index, 1);
            draw();
            input.focus();
            this.changed();
          });
          return h("span", { class: "cb-chip" }, h("span", { text: display(value) }), remove);
        });
        // The input stays put (moving it would blur it): only the chips before it change.
        for (const chip of box.querySelectorAll(":scope > .cb-chip")) {
          chip.remove();
        }
        input.before(...chips);
      };
      const commit = (text) => {
        const values = text
          .split(VALUE_SEPARATORS)
          .map((part) => part.trim())
          .filter(Boolean);
        if (!values.length) {
          return;
        }
        condition.value.push(...values.map((value) => toValue(spec.type, value)));
        draw();
        this.changed();
      };
      input.addEventListener("keydown", (event) => {
        if (event.isComposing || event.keyCode === 229) {
          return; // the Enter that confirms a Japanese IME conversion is not ours
        }
        if (event.key === "Enter") {
          event.preventDefault(); // not a form submit
          const text = input.value;
          input.value = "";
          commit(text);
        } else if (event.key === "Backspace" && input.value === "" && condition.value.length) {
          condition.value.pop();
          draw();
          input.focus();
          this.changed();
        }
      });
      input.addEventListener("input", () => {
        if (VALUE_SEPARATORS.test(input.value)) {
          const parts = input.value.split(VALUE_SEPARATORS);
          input.value = parts.pop();
          commit(parts.join(","));
        }
      });
      input.addEventListener("blur", (event) => {
        if (box.contains(event.relatedTarget)) {
          return; // on its way to a chip's ×: redrawing now would swallow that click
        }
        const text = input.value;
        input.value = "";
        commit(text);
      });
      draw();
      return box;
    }

    // --- recording and previewing ----------------------------------------------------------------

    changed({ immediately = false } = {}) {
      const document_ = this.exportGroup(this.state);
      if (this.output) {
        this.output.value = JSON.stringify(document_);
        this.output.dispatchEvent(new Event("change", { bubbles: true }));
      }
      this.clearErrors();
      window.clearTimeout(this.timer);
      if (this.request) {
        this.request.abort();
        this.request = null;
      }
      this.sequence += 1;
      if (!this.count || !this.previewUrl) {
        return;
      }
      if (!this.isComplete(this.state)) {
        this.showState("incomplete", "—", this.t("incomplete"));
        return;
      }
      this.count.dataset.state = "loading";
      this.count.setAttribute("aria-busy", "true");
      const sequence = this.sequence;
      const send = () => this.preview(document_, sequence);
      if (immediately) {
        send();
      } else {
        this.timer = window.setTimeout(send, PREVIEW_DELAY_MS);
      }
    }

    async preview(criteria, sequence) {
      const request = new AbortController();
      this.request = request;
      let response;
      let body = null;
      try {
        response = await fetch(this.previewUrl, {
          method: "POST",
          credentials: "same-origin",
          headers: {
            "Content-Type": "application/json",
            Accept: "application/json",
            "X-CSRFToken": csrfToken(this.root),
          },
          body: JSON.stringify({ criteria }),
          signal: request.signal,
        });
        body = await response.json().catch(() => null);
      } catch (error) {
        if (error.name === "AbortError") {
          return;
        }
        response = null;
      }
      if (sequence !== this.sequence) {
        return; // the criteria changed while this answer was on its way
      }
      this.request = null;
      if (response && response.ok && body && typeof body.count === "number") {
        this.showCount(body.count);
      } else if (response && response.status === 400 && body && body.error) {
        this.showError(String(body.error), String(body.path || ""));
      } else {
        this.showState("failed", this.t("preview_failed"));
      }
    }

    showState(state, text, hint) {
      this.count.dataset.state = state;
      this.count.removeAttribute("aria-busy");
      delete this.count.dataset.count;
      const parts = [
        h("span", { class: state === "incomplete" ? "cb-count-value" : "cb-count-message", text }),
      ];
      if (hint) {
        parts.push(h("span", { class: "cb-count-hint", text: hint }));
      }
      this.count.replaceChildren(...parts);
    }

    showCount(count) {
      const template = this.t(count === 1 ? "count_one" : "count_other");
      const [before, after] = template.includes("{count}")
        ? template.split("{count}", 2)
        : ["", ` ${template}`];
      this.count.dataset.state = "count";
      this.count.dataset.count = String(count);
      this.count.removeAttribute("aria-busy");
      this.count.replaceChildren(
        before,
        h("strong", { class: "cb-count-value", text: count.toLocaleString(this.language) }),
        after,
      );
    }

    showError(message, path) {
      this.showState("error", format(this.t("invalid"), { error: message }));
      const { node, part } = this.resolve(path);
      const element = node ? this.nodes.get(node) : null;
      if (!element || !element.isConnected) {
        return;
      }
      element.classList.add("cb-invalid");
      const own = isGroup(node) ? element.querySelector(":scope > .cb-group-head") : element;
      const control = part ? own.querySelector(`:scope > [data-part="${CSS.escape(part)}"]`) : null;
      if (control) {
        control.classList.add("cb-part-invalid");
        for (const input of [control, ...control.querySelectorAll("input, select")]) {
          if (input.matches("input, select")) {
            input.setAttribute("aria-invalid", "true");
          }
        }
      }
      const note = own.querySelector(":scope > .cb-error");
      if (note) {
        note.textContent = message;
        note.hidden = false;
      }
    }

    clearErrors() {
      for (const element of this.tree.querySelectorAll(".cb-invalid, .cb-part-invalid")) {
        element.classList.remove("cb-invalid", "cb-part-invalid");
      }
      for (const element of this.tree.querySelectorAll("[aria-invalid]")) {
        element.removeAttribute("aria-invalid");
      }
      for (const note of this.tree.querySelectorAll(".cb-error")) {
        note.hidden = true;
        note.textContent = "";
      }
    }

    // "conditions.0.conditions.2.value" → the third condition of the first group, part "value".
    resolve(path) {
      const parts = path ? path.split(".") : [];
      let node = this.state;
      let index = 0;
      while (
        index + 1 < parts.length &&
        parts[index] === "conditions" &&
        /^\d+$/.test(parts[index + 1]) &&
        isGroup(node) &&
        node.conditions[Number(parts[index + 1])]
      ) {
        node = node.conditions[Number(parts[index + 1])];
        index += 2;
      }
      return { node, part: parts[index] || "" };
    }
  }

  function init(scope) {
    const container = scope && scope.querySelectorAll ? scope : document;
    const found = [...container.querySelectorAll("[data-criteria-builder]")];
    if (container.matches && container.matches("[data-criteria-builder]")) {
      found.unshift(container);
    }
    for (const root of found) {
      if (!root.criteriaBuilder) {
        root.criteriaBuilder = new CriteriaBuilder(root);
      }
    }
  }

  window.mappCriteriaBuilder = { init };
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", () => init(document));
  } else {
    init(document);
  }
  // Builders that arrive in an htmx swap.
  document.addEventListener("htmx:load", (event) => init(event.detail && event.detail.elt));
})();
