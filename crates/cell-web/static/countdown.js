// Counts down the seconds a risky change has left before it is undone; the page shows the
// deadline and the seconds at render time without it.
(function () {
  var left = document.getElementById('countdown');
  if (!left) { return; }
  var deadline = Date.parse(left.dataset.deadline);
  var tick = function () {
    var seconds = Math.max(0, Math.round((deadline - Date.now()) / 1000));
    left.textContent = seconds;
    if (seconds === 0) {
      clearInterval(timer);
      setTimeout(function () { location.reload(); }, 3000);
    }
  };
  var timer = setInterval(tick, 1000);
})();
