// Follows the journal on the Units and logs page: every 2 s while "Follow" is ticked, asks
// the API for the lines after the last one shown and appends them. The page works without
// it (reload to see new lines).
(function () {
  var table = document.getElementById('log-lines');
  var follow = document.getElementById('follow');
  var trouble = document.getElementById('follow-error');
  if (!table || !follow) { return; }
  var body = table.tBodies[0];
  var cursor = table.dataset.cursor || '';
  var query = table.dataset.query || '';
  var names = ['emergency', 'alert', 'critical', 'error', 'warning', 'notice', 'info', 'debug'];
  var cell = function (row, text) {
    var td = document.createElement('td');
    td.textContent = text;
    row.appendChild(td);
  };
  var poll = function () {
    if (!follow.checked) { return; }
    var url = '/api/v1/logs?' + (query ? query + '&' : '') + (cursor ? 'after=' + encodeURIComponent(cursor) : 'limit=50');
    fetch(url, { credentials: 'same-origin' })
      .then(function (response) {
        if (trouble) {
          trouble.hidden = response.ok;
          trouble.textContent = response.ok ? '' : 'Following stopped: the cell answered ' + response.status + '. Reload the page.';
        }
        if (!response.ok) { follow.checked = false; return null; }
        return response.json();
      })
      .then(function (page) {
        if (!page) { return; }
        page.lines.forEach(function (line) {
          var row = document.createElement('tr');
          row.className = 'priority-' + line.priority;
          cell(row, line.at.replace('T', ' ').replace(/\.\d+Z$|Z$/, ''));
          cell(row, line.unit);
          cell(row, names[line.priority] || String(line.priority));
          cell(row, line.message);
          body.appendChild(row);
        });
        if (page.cursor) { cursor = page.cursor; }
        var last = body.lastElementChild;
        if (page.lines.length && last) { last.scrollIntoView({ block: 'nearest' }); }
      })
      .catch(function () {});
  };
  setInterval(poll, 2000);
})();
