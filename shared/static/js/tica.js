document.body.className += " js-enabled nhsuk-frontend-supported";
