// Progressive enhancements; every page reads and works without them.
(function () {
  "use strict";

  // Copy buttons: copy their data-copy text, and say so.
  document.addEventListener("click", function (event) {
    var button = event.target.closest("[data-copy]");
    if (!button) return;
    var text = button.getAttribute("data-copy");
    var done = function () {
      var label = button.textContent;
      button.textContent = "Copied";
      setTimeout(function () { button.textContent = label; }, 1500);
    };
    if (navigator.clipboard && navigator.clipboard.writeText) {
      navigator.clipboard.writeText(text).then(done);
    } else {
      var area = document.createElement("textarea");
      area.value = text;
      document.body.appendChild(area);
      area.select();
      document.execCommand("copy");
      area.remove();
      done();
    }
  });

  // Tabs: About and Usage become tabs; without script both are simply shown, one after the other.
  document.querySelectorAll("[data-tabs]").forEach(function (tabs) {
    var list = tabs.querySelector("[role=tablist]");
    var buttons = list.querySelectorAll("[role=tab]");
    var show = function (chosen) {
      buttons.forEach(function (button) {
        var selected = button === chosen;
        button.setAttribute("aria-selected", selected ? "true" : "false");
        document.getElementById(button.getAttribute("aria-controls")).hidden = !selected;
      });
    };
    list.hidden = false;
    tabs.classList.add("enhanced");
    buttons.forEach(function (button) { button.addEventListener("click", function () { show(button); }); });
    show(buttons[0]);
  });

  // Search as you type: ask /search and redraw the list, keeping the address bar in step.
  var form = document.querySelector("[data-search]");
  var results = document.querySelector("[data-results]");
  var count = document.querySelector("[data-count]");
  if (!form || !results || !form.querySelector("input[name=q]")) return;
  var timer = null;
  var latest = 0;

  function element(tag, className, text) {
    var node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = text;
    return node;
  }

  function card(repo) {
    var item = element("li", "card");
    var link = element("a", "card-link");
    link.href = repo.path;
    if (repo.logoUrl) {
      var img = element("img", "logo");
      img.src = repo.logoUrl; img.alt = ""; img.width = 48; img.height = 48;
      link.appendChild(img);
    } else {
      link.appendChild(element("span", "logo placeholder", repo.name.charAt(0).toUpperCase()));
    }
    var text = element("span", "card-text");
    text.appendChild(element("span", "card-name", repo.name));
    var registry = element("span", "card-registry muted", repo.displayName);
    if (repo.verified) {
      registry.appendChild(document.createTextNode(" "));
      var verified = element("span", "badge verified", "✓ Verified");
      verified.title = "Verified publisher";
      registry.appendChild(verified);
    }
    registry.appendChild(document.createTextNode(" · " + repo.alias));
    text.appendChild(registry);
    link.appendChild(text);
    item.appendChild(link);
    if (repo.description) item.appendChild(element("p", "card-description", repo.description));
    var badges = element("ul", "badges");
    if (repo.signed) badges.appendChild(element("li", "badge signed", "✓ signed"));
    repo.operatingSystems.forEach(function (v) { badges.appendChild(element("li", "badge os", v)); });
    repo.architectures.forEach(function (v) { badges.appendChild(element("li", "badge arch", v)); });
    item.appendChild(badges);
    var stats = element("p", "card-pushed muted");
    var downloads = element("span", "downloads", repo.downloads.toLocaleString("en-US") + (repo.downloads === 1 ? " download" : " downloads"));
    downloads.setAttribute("data-downloads", String(repo.downloads));
    stats.appendChild(downloads);
    stats.appendChild(document.createTextNode(" · "));
    if (repo.lastPushedAt) {
      var time = element("time", null, new Date(repo.lastPushedAt * 1000).toISOString().slice(0, 16).replace("T", " ") + " UTC");
      time.setAttribute("datetime", new Date(repo.lastPushedAt * 1000).toISOString());
      stats.appendChild(document.createTextNode("Pushed "));
      stats.appendChild(time);
    } else {
      stats.appendChild(document.createTextNode("No images yet"));
    }
    item.appendChild(stats);
    return item;
  }

  function run() {
    var params = new URLSearchParams(new FormData(form));
    var term = params.get("q") || "";
    params.delete("q");
    params.set("term", term);
    var ticket = ++latest;
    fetch("/search?" + params.toString(), { headers: { Accept: "application/json" } })
      .then(function (response) { return response.json(); })
      .then(function (body) {
        if (ticket !== latest || !body.repositories) return;
        results.replaceChildren.apply(results, body.repositories.map(card));
        var n = body.repositories.length;
        count.textContent = n + (n === 1 ? " repository" : " repositories") + (body.nextToken ? " on this page" : "");
        var empty = document.querySelector(".empty");
        if (empty) empty.hidden = n > 0;
        var more = document.querySelector("[data-next]");
        if (more) more.hidden = true;
        var shown = new URLSearchParams(new FormData(form));
        history.replaceState(null, "", "?" + shown.toString());
      });
  }

  form.addEventListener("input", function () {
    clearTimeout(timer);
    timer = setTimeout(run, 200);
  });
  form.addEventListener("submit", function (event) { event.preventDefault(); run(); });
})();
